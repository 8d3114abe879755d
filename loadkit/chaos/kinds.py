"""The fault kinds: one table every way a fault comes in (scenario YAML, control API, header)
and the proxy's behaviours read, so a kind and its parameters are defined once.

Pure data, no loadkit imports: the scenario loader reads it without pulling in the proxy.
Adding a kind is one `FaultKind` here plus one behaviour (docs/chaos.md, "Adding a fault
kind"); `tests/unit/test_chaos_kinds.py` checks the two, and the docs' table, agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Phase = Literal["before_content", "mid_stream", "region"]
Unit = Literal["ms", "tokens", "fraction", "factor", "status"]

# The statuses an injected error may carry: each one a real provider answers with.
ERROR_STATUSES: tuple[int, ...] = (429, 500, 502, 503, 504, 529)


@dataclass(frozen=True)
class FaultParam:
    """One parameter: its YAML key (durations there), its params key (numbers, ms) and range.

    `low`/`high` bound the params value (`*_open`: the bound itself is refused). A YAML
    duration is checked by the duration parser only (not negative), as it always was: one
    above `high` loads, and the proxy refuses it when the drill's driver sends it.
    """

    yaml_key: str
    key: str
    type: type[int] | type[float]
    unit: Unit
    low: float
    high: float
    _: dataclasses.KW_ONLY
    low_open: bool = False
    high_open: bool = False
    required: bool = False
    choices: tuple[int, ...] = ()  # when set, the only values allowed
    default: float | None = None  # what the proxy does when the parameter is absent

    def range_text(self) -> str:
        lb = "(" if self.low_open else "["
        hb = ")" if self.high_open else "]"
        return f"{lb}{self.low:g}, {self.high:g}{hb}"

    def in_range(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below


@dataclass(frozen=True)
class FaultKind:
    """One kind: when it acts (`phase`), what the client sees, and its parameters.

    `one_of`: params keys of which exactly one must be given. `needs_region`: the fault
    must select a region (`where.region`) or an upstream (`where.upstream`). `truncates`:
    the answer ends before it is whole; a service in between (a gateway) may close it as if
    complete, and analysis then counts a tagged `ok` as `truncated`.
    """

    name: str
    phase: Phase
    description: str
    params: tuple[FaultParam, ...] = ()
    one_of: tuple[str, ...] = ()
    needs_region: bool = False
    truncates: bool = False

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(p.key for p in self.params)

    @property
    def required(self) -> frozenset[str]:
        return frozenset(p.key for p in self.params if p.required)


_MAX_MS = 3_600_000.0  # an hour: longer than any request a drill waits for
_STATUS = FaultParam(
    "status", "status", int, "status", 400, 599, required=True, choices=ERROR_STATUSES
)
# Where the YAML loader and the control API used to disagree, the registry keeps the rule
# that accepted more, so nothing that worked stops working: `after_tokens` is optional for
# every kind (the YAML loader required it for cut and reset_mid; absent, the fault fires at
# the first content frame, before it: tests/unit/test_chaos_faults.py runs a cut without it) and
# `factor` may be 1 (the YAML loader wanted > 1; 1 stretches nothing).
_AFTER_TOKENS = FaultParam("after_tokens", "after_tokens", int, "tokens", 0, 10_000_000, default=0)


def _ms(yaml_key: str, key: str, high: float = _MAX_MS, required: bool = False) -> FaultParam:
    return FaultParam(yaml_key, key, float, "ms", 0, high, required=required)


KINDS: tuple[FaultKind, ...] = (
    FaultKind(
        "http_error",
        "before_content",
        "an error answer before any content, with a provider-realistic body",
        (_STATUS, _ms("retry_after", "retry_after_ms", high=86_400_000.0)),
    ),
    FaultKind(
        "overloaded",
        "before_content",
        "529 overloaded before any content, in the request's API (Anthropic's overloaded_error)",
        (_ms("retry_after", "retry_after_ms", high=86_400_000.0),),
    ),
    FaultKind(
        "latency",
        "before_content",
        "the request waits fixed + heavy-tailed jitter before it is forwarded",
        (_ms("delay", "fixed_ms", required=True), _ms("jitter", "jitter_ms")),
    ),
    FaultKind("refuse", "before_content", "the connection closes before any byte"),
    FaultKind("reset", "before_content", "the connection is reset (RST) before any byte"),
    FaultKind("hang", "before_content", "no answer, connection open, until the client leaves"),
    FaultKind(
        "stall",
        "mid_stream",
        "the stream stops sending, connection open",
        (_AFTER_TOKENS, _ms("after", "after_ms")),
        one_of=("after_tokens", "after_ms"),
        truncates=True,
    ),
    FaultKind(
        "cut",
        "mid_stream",
        "the stream ends cleanly, without [DONE]",
        (_AFTER_TOKENS,),
        truncates=True,
    ),
    FaultKind(
        "reset_mid", "mid_stream", "a TCP reset mid-stream", (_AFTER_TOKENS,), truncates=True
    ),
    FaultKind(
        "error_frame",
        "mid_stream",
        "an error frame mid-stream, then the end",
        (_AFTER_TOKENS,),
        truncates=True,
    ),
    FaultKind(
        "malformed_chunk", "mid_stream", "a truncated JSON frame mid-stream", (_AFTER_TOKENS,)
    ),
    FaultKind("drop_usage", "mid_stream", "the final usage chunk is removed"),
    FaultKind(
        "slow_tokens",
        "mid_stream",
        "every gap between content frames stretched `factor` times",
        (FaultParam("factor", "factor", float, "factor", 1, 1000, required=True),),
    ),
    FaultKind("duplicate_chunk", "mid_stream", "one content chunk sent twice", (_AFTER_TOKENS,)),
    FaultKind(
        "region_outage",
        "region",
        "the region's listener closes (connection refused), or per request: refused",
        needs_region=True,
    ),
    FaultKind(
        "brownout",
        "before_content",
        "a share of requests get an error, the rest are delayed",
        (
            FaultParam("error_rate", "error_rate", float, "fraction", 0, 1, required=True),
            _ms("latency", "added_latency_ms"),
            dataclasses.replace(_STATUS, required=False, default=503),
        ),
    ),
)

BY_NAME: Mapping[str, FaultKind] = {k.name: k for k in KINDS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
BEFORE_CONTENT: frozenset[str] = frozenset(k.name for k in KINDS if k.phase == "before_content")
MID_STREAM: frozenset[str] = frozenset(k.name for k in KINDS if k.phase == "mid_stream")
TRUNCATING: frozenset[str] = frozenset(k.name for k in KINDS if k.truncates)
# params key -> its definition (a key means the same thing in every kind that has it)
PARAMS: Mapping[str, FaultParam] = {p.key: p for k in KINDS for p in k.params}
