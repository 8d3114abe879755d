"""One attempt's scratch state and the record made of it (no I/O).

`LLMClient` fills an `Attempt` while it sends and reads; `attempt_record` turns it into the
`RequestRecord` the run writes: times on the run clock (shifted by a simulated round
trip), inter-token gaps, tokens from the server's usage or estimated, cost.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from loadkit.apis.base import PlannedCall, Usage, prompt_text
from loadkit.cost import Price, cost_usd
from loadkit.results.schema import NAN, RequestRecord
from loadkit.tokens import estimate_tokens


@dataclass(frozen=True, slots=True)
class RecordContext:
    """Where an attempt ran: the run clock's start, the run, the worker, region and path."""

    run_t0: float
    run_id: str
    worker: str
    region: str
    path: str
    half_rtt: float  # s: the simulated one-way trip added to the timings
    api: str = "openai"
    endpoint_name: str = ""
    model: str = ""  # the model asked for at this endpoint ("" = the call's)


@dataclass(slots=True)
class Attempt:
    """Mutable scratch state of one attempt (the client fills it; the record is built from it)."""

    status: int = 0
    outcome: str = "ok"
    error: str = ""
    fault: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    t_first: float = NAN
    t_end: float = NAN
    arrivals: list[float] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    usage: Usage | None = None
    finished: bool = False  # the answer said it ended (end event, finish reason, whole body)
    body_bytes: int = 0
    t_start: float = NAN  # the attempt's clock: restarted by a stale-connection resend
    reconnects: int = 0
    response_model: str = ""
    finish_reason: str = ""
    served_by: str = ""
    recorded: tuple[str, ...] = ()  # the scenario's record_headers, in order


def _percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of an already sorted list."""
    n = len(sorted_values)
    pos = (n - 1) * q
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def gap_stats(arrivals: Sequence[float]) -> tuple[float, float, float]:
    """(mean, p99, max) of the gaps between content arrivals in ms; NaN with < 2 arrivals."""
    if len(arrivals) < 2:
        return NAN, NAN, NAN
    gaps = sorted((b - a) * 1000.0 for a, b in itertools.pairwise(arrivals))
    return sum(gaps) / len(gaps), _percentile(gaps, 0.99), gaps[-1]


def forced_tokens(call: PlannedCall) -> int | None:
    """The answer length the request forced (`ignore_eos`, `min_tokens`), if it did."""
    extra = call.extra_body
    if call.kind == "embeddings" or not call.max_tokens:
        return None
    if extra.get("ignore_eos") is True:
        return int(call.max_tokens)
    low = extra.get("min_tokens")
    if isinstance(low, int) and not isinstance(low, bool) and low > 0:
        return min(low, int(call.max_tokens))
    return None


def check_answer(call: PlannedCall, a: Attempt) -> None:
    """What a 200 that ended cleanly still may not be: filtered, empty or shorter than forced.

    - `content_filter`: the provider stopped the answer (Azure's filter, Anthropic's
      refusal); never retried.
    - `empty`: an answer without a single content frame, where the call asked for tokens
      (an event stream holding only `[DONE]` is no success).
    - `truncated`: the server says the answer is shorter than the request forced (a
      gateway re-ended a broken stream). Judged on the server's own usage only; a chunk
      count is not a token count.
    """
    if a.outcome != "ok" or call.kind == "embeddings":
        return
    if a.finish_reason == "content_filter":
        a.outcome, a.error = "content_filter", "the provider's content filter stopped the answer"
        return
    if not "".join(a.pieces) and call.max_tokens != 0:
        a.outcome = "empty"
        a.error = f"answer carried no content (finish_reason {a.finish_reason or 'none'})"
        return
    forced = forced_tokens(call)
    if forced is None or a.usage is None:
        return
    got = a.usage[1]
    if got < forced:
        a.outcome = "truncated"
        a.error = (
            f"answer ended after {got} of {forced} forced tokens "
            f"(finish_reason {a.finish_reason or 'none'})"
        )


def attempt_record(
    call: PlannedCall,
    where: RecordContext,
    attempt_no: int,
    request_id: str,
    t_intended_ms: float | None,
    a: Attempt,
    price: Price | None,
) -> RequestRecord:
    """The record of one finished (or aborted) attempt: times on the run clock, tokens
    (the server's usage, else estimated), cost."""
    t_start = a.t_start
    shift_ms = where.half_rtt * 1000.0
    t_sent = (t_start - where.run_t0) * 1000.0
    t_int = NAN if t_intended_ms is None else float(t_intended_ms)
    lag = t_sent - t_int if attempt_no == 0 and not math.isnan(t_int) else NAN
    ttft = (a.t_first - t_start) * 1000.0 + shift_ms if a.arrivals or a.pieces else NAN
    if call.kind == "embeddings":
        ttft = NAN
    end = a.t_end if not math.isnan(a.t_end) else time.perf_counter()
    e2e = (end - t_start) * 1000.0 + (shift_ms if a.status else 0.0)
    itl_mean, itl_p99, itl_max = gap_stats(a.arrivals)
    text = "".join(a.pieces)
    if a.usage is not None:
        prompt, completion, cached, written = a.usage
        source = "server"
    elif 200 <= a.status < 300:
        prompt = estimate_tokens(prompt_text(call))
        completion = estimate_tokens(text) if call.kind != "embeddings" else 0
        cached = written = 0
        source = "estimated"
    else:
        prompt = completion = cached = written = 0
        source = "estimated"
    cost = cost_usd(price, prompt, cached, completion, written) if price is not None else NAN
    return RequestRecord(
        run_id=where.run_id,
        request_id=request_id,
        attempt=attempt_no,
        worker=where.worker,
        region=where.region,
        workload=call.workload,
        session_id=call.session_id,
        turn=call.turn,
        model=where.model or call.model,
        endpoint=where.path,
        t_intended=t_int,
        t_sent=t_sent,
        sched_lag_ms=lag,
        ttft_ms=ttft,
        e2e_ms=e2e,
        itl_mean_ms=itl_mean,
        itl_p99_ms=itl_p99,
        itl_max_ms=itl_max,
        status=a.status,
        outcome=a.outcome,
        error=a.error,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        tokens_source=source,
        cost_usd=cost,
        fault=a.fault,
        response_model=a.response_model,
        reconnects=a.reconnects,
        max_tokens=int(call.max_tokens or 0) if call.kind != "embeddings" else 0,
        finish_reason=a.finish_reason,
        planned_prompt_tokens=call.planned_prompt_tokens,
        served_by=a.served_by,
        api=where.api,
        endpoint_name=where.endpoint_name,
        cache_write_tokens=written,
        headers=a.recorded,
    )
