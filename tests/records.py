"""One record factory for the tests: defaults for every column, so a test names only what it
is about instead of spelling out the whole record."""

from __future__ import annotations

import math
from typing import Any

from loadkit.results import schema
from loadkit.results.schema import RequestRecord

# A successful chat answer; every column has a value a test can rely on.
DEFAULTS: dict[str, Any] = {
    **schema.DEFAULTS,
    "run_id": "t",
    "request_id": "r0",
    "attempt": 0,
    "worker": "w",
    "region": "na",
    "workload": "chat",
    "session_id": "s",
    "turn": 0,
    "model": "m",
    "endpoint": "chat",
    "t_intended": math.nan,
    "t_sent": 0.0,
    "sched_lag_ms": math.nan,
    "ttft_ms": 100.0,
    "e2e_ms": 500.0,
    "itl_mean_ms": 10.0,
    "itl_p99_ms": 20.0,
    "itl_max_ms": 30.0,
    "status": 200,
    "outcome": "ok",
    "error": "",
    "prompt_tokens": 100,
    "completion_tokens": 50,
    "cached_tokens": 0,
    "tokens_source": "server",
    "cost_usd": 0.001,
    "fault": "",
}

# What a failed attempt looks like: no tokens, no TTFT, no cost.
FAILED: dict[str, Any] = {
    "outcome": "http_error",
    "status": 503,
    "ttft_ms": math.nan,
    "itl_mean_ms": math.nan,
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "cost_usd": 0.0,
    "e2e_ms": 50.0,
}


def record(**over: Any) -> RequestRecord:
    """A record: the defaults above with `over` applied."""
    return RequestRecord(**{**DEFAULTS, **over})
