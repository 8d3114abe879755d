"""Hand-built record columns with known answers for the analysis and report tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from loadkit.results.schema import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS
from tests.records import DEFAULTS, FAILED


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
    return {**FAILED, **kw}
