"""The request record: one row per attempt, the only thing analysis ever reads.

`request_id` groups the attempts (retries, failover) of one logical user request. Times
are milliseconds relative to the run start (`t_intended`, `t_sent`) or durations in ms.
A value that does not apply (TTFT of an embeddings call, ITL of a one-chunk answer) is
NaN in memory and an empty cell in the CSV, so analysis can tell "not measured" from 0.

Conventions the client follows:
- `t_intended` is the logical request's intended send time (open loop; NaN in closed
  loop), repeated on every attempt; `sched_lag_ms` = `t_sent - t_intended` on attempt 0
  only (NaN on retries, whose later send is the policy's doing, not the scheduler's).
- `ttft_ms` of a non-streamed chat/completions call is its E2E (the user sees the first
  token when the whole answer arrives); of an embeddings call it is NaN.
- `e2e_ms` of a failed attempt ends when the client gave up (timeout, cut, error).
- tokens of a failed attempt are what it consumed: 0 without a 200, else the prompt and
  the partial answer (estimated unless the server reported usage).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, fields

OUTCOMES: tuple[str, ...] = (
    "ok",
    "http_error",
    "rate_limited",
    "timeout",
    "connect_error",
    "stream_cut",
    "stalled",
    "malformed",
    "aborted",
    # an answer that looked complete but was not: its upstream stream was cut (a gateway
    # re-ended it) or it ended with fewer tokens than forced or than its own usage said
    "truncated",
    # an error event inside a 200 stream (a gateway's or provider's mid-stream error)
    "stream_error",
    # a 200 answer without a single content frame, where the call asked for tokens
    "empty",
    # the provider is overloaded: Anthropic's 529, or its `overloaded_error` event mid-stream
    "overloaded",
    # the provider's content filter refused the prompt or stopped the answer (never retried)
    "content_filter",
    # an open-loop arrival that was due but never sent: the run ended while it waited for a
    # free slot under `max_in_flight` (no `t_sent`; `loadkit.traffic.arrivals`)
    "not_sent",
)
TOKENS_SOURCES: tuple[str, ...] = ("server", "estimated")

NAN = math.nan


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One attempt of one logical request, as the client saw it."""

    run_id: str
    request_id: str
    attempt: int
    worker: str
    region: str
    workload: str
    session_id: str
    turn: int
    model: str
    endpoint: str
    t_intended: float
    t_sent: float
    sched_lag_ms: float
    ttft_ms: float
    e2e_ms: float
    itl_mean_ms: float
    itl_p99_ms: float
    itl_max_ms: float
    status: int
    outcome: str
    error: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    tokens_source: str
    cost_usd: float
    fault: str
    # Added after the first 27 columns (files without them still read, with these defaults).
    response_model: str = ""  # the model the service said answered (`model` in its response)
    reconnects: int = 0  # stale pooled connections replaced before this attempt was answered
    max_tokens: int = 0  # the max_tokens sent (0: none sent)
    finish_reason: str = ""  # the service's finish_reason (stop, length, tool_calls, ...)
    planned_prompt_tokens: int = 0  # the prompt size the workload asked for (0: unknown)
    served_by: str = ""  # the upstream that answered (a gateway's deployment), when known
    api: str = "openai"  # the provider API the attempt spoke (loadkit.apis)
    endpoint_name: str = ""  # the scenario's name of the endpoint called ("" : the target)
    cache_write_tokens: int = 0  # prompt tokens written to the provider's cache (Anthropic)
    # values of the scenario's `target.record_headers`, in order: the h_<name> columns
    headers: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


# `headers` is not a column of its own: its values become the run's h_<name> columns
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RequestRecord) if f.name != "headers")
HEADER_PREFIX = "h_"

# Column kinds drive both the writer's formatting and the reader's dtypes.
FLOAT_COLUMNS: frozenset[str] = frozenset(
    {
        "t_intended",
        "t_sent",
        "sched_lag_ms",
        "ttft_ms",
        "e2e_ms",
        "itl_mean_ms",
        "itl_p99_ms",
        "itl_max_ms",
        "cost_usd",
    }
)
INT_COLUMNS: frozenset[str] = frozenset(
    {
        "attempt",
        "turn",
        "status",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "reconnects",
        "max_tokens",
        "planned_prompt_tokens",
        "cache_write_tokens",
    }
)
STR_COLUMNS: frozenset[str] = frozenset(COLUMNS) - FLOAT_COLUMNS - INT_COLUMNS


def _fmt_float(value: float) -> str:
    if value != value:  # NaN: not measured
        return ""
    return f"{value:.3f}"


def _fmt_cost(value: float) -> str:
    if value != value:
        return ""
    return f"{value:.10g}"


def _fmt_text(value: str) -> str:
    """CSV-quote only when needed; newlines become spaces so a row is always one line."""
    if "\n" in value or "\r" in value:
        value = value.replace("\r", " ").replace("\n", " ")
    if "," in value or '"' in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def to_csv_line(r: RequestRecord) -> str:
    """The record as one CSV line (with its newline), columns in `COLUMNS` order."""
    f = _fmt_float
    t = _fmt_text
    return (
        ",".join(
            (
                t(r.run_id),
                t(r.request_id),
                str(r.attempt),
                t(r.worker),
                t(r.region),
                t(r.workload),
                t(r.session_id),
                str(r.turn),
                t(r.model),
                t(r.endpoint),
                f(r.t_intended),
                f(r.t_sent),
                f(r.sched_lag_ms),
                f(r.ttft_ms),
                f(r.e2e_ms),
                f(r.itl_mean_ms),
                f(r.itl_p99_ms),
                f(r.itl_max_ms),
                str(r.status),
                t(r.outcome),
                t(r.error),
                str(r.prompt_tokens),
                str(r.completion_tokens),
                str(r.cached_tokens),
                t(r.tokens_source),
                _fmt_cost(r.cost_usd),
                t(r.fault),
                t(r.response_model),
                str(r.reconnects),
                str(r.max_tokens),
                t(r.finish_reason),
                str(r.planned_prompt_tokens),
                t(r.served_by),
                t(r.api),
                t(r.endpoint_name),
                str(r.cache_write_tokens),
                *map(t, r.headers),
            )
        )
        + "\n"
    )


HEADER_LINE = ",".join(COLUMNS) + "\n"


def header_column(name: str) -> str:
    """The column of a recorded response header: `x-litellm-model-id` -> `h_x_litellm_model_id`."""
    return HEADER_PREFIX + "".join(c if c.isalnum() else "_" for c in name.lower())


def header_line(record_headers: tuple[str, ...] = ()) -> str:
    """The CSV header of a run that records these response headers."""
    return ",".join((*COLUMNS, *map(header_column, record_headers))) + "\n"
# The columns every requests.csv has had; a file whose header stops after them (an older
# loadkit) reads with the later columns at their defaults.
FIRST_COLUMNS: tuple[str, ...] = COLUMNS[: COLUMNS.index("fault") + 1]
DEFAULTS: dict[str, object] = {
    f.name: f.default for f in fields(RequestRecord) if f.default is not MISSING and f.name in COLUMNS
}
