"""Hand-built record columns with known answers for the analysis and report tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from loadkit.results import schema
from loadkit.results.schema import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS

DEFAULTS: dict[str, Any] = {
    **schema.DEFAULTS,
    "run_id": "t",
    "attempt": 0,
    "worker": "w",
    "region": "na",
    "workload": "chat",
    "session_id": "s",
    "turn": 0,
    "model": "m",
    "endpoint": "chat",
    "t_intended": np.nan,
    "sched_lag_ms": np.nan,
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


def columns(rows: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Record columns from rows that give `request_id`, `t_sent` and what differs."""
    rows = [{**DEFAULTS, **r} for r in rows]
    out: dict[str, np.ndarray] = {}
    for c in COLUMNS:
        vals = [r[c] for r in rows]
        if c in FLOAT_COLUMNS:
            out[c] = np.asarray(vals, dtype=np.float64)
        elif c in INT_COLUMNS:
            out[c] = np.asarray(vals, dtype=np.int64)
        else:
            out[c] = np.asarray(vals, dtype=object)
    return out


def failed(**kw: Any) -> dict[str, Any]:
    """A failed attempt: no tokens, no TTFT, no cost unless given."""
    base = {
        "outcome": "http_error",
        "status": 503,
        "ttft_ms": np.nan,
        "itl_mean_ms": np.nan,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
        "e2e_ms": 50.0,
    }
    return {**base, **kw}
