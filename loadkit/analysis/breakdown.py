"""Per-region and per-workload tables of logical requests (one sort per metric, no loops
over rows)."""

from __future__ import annotations

from typing import Any

import numpy as np

from loadkit.analysis.requests import Logical
from loadkit.analysis.slo import Limits, good_mask
from loadkit.analysis.stats import encode, grouped_percentiles


def breakdown(lr: Logical, by: str, lim: Limits, duration_s: float) -> list[dict[str, Any]]:
    """One row per value of `by` ("region" or "workload"), sorted by name."""
    labels = getattr(lr, by)
    if lr.n == 0:
        return []
    codes, names = encode(labels.astype(str))
    g = names.size
    n = np.bincount(codes, minlength=g).astype(np.float64)
    n_ok = np.bincount(codes, weights=lr.ok, minlength=g)
    good = np.bincount(codes, weights=good_mask(lr, lim), minlength=g)
    cost = np.bincount(codes, weights=np.nan_to_num(lr.cost_usd, nan=0.0), minlength=g)
    priced = np.bincount(codes, weights=np.isfinite(lr.cost_usd), minlength=g) > 0
    fo = np.bincount(codes, weights=lr.failover, minlength=g)
    ttft, _ = grouped_percentiles(codes, lr.ttft_ms, g, (50.0, 95.0, 99.0))
    e2e, _ = grouped_percentiles(codes, lr.latency_ms, g, (50.0, 95.0, 99.0))
    dur = max(duration_s, 1e-9)
    rows = []
    for i, name in enumerate(names.tolist()):
        rows.append(
            {
                by: name,
                "requests": int(n[i]),
                "requests_ok": int(n_ok[i]),
                "error_rate": round(float(1 - n_ok[i] / n[i]), 6),
                "requests_per_s": round(float(n[i]) / dur, 4),
                "goodput_per_s": round(float(good[i]) / dur, 4),
                "good_share": round(float(good[i] / n[i]), 6),
                "ttft_ms": _p(ttft[i]),
                "e2e_ms": _p(e2e[i]),
                "cost_usd_per_ok_request": (
                    round(float(cost[i] / n_ok[i]), 10) if n_ok[i] and priced[i] else None
                ),
                "failover_requests": int(fo[i]),
            }
        )
    return rows


def _p(row: np.ndarray) -> dict[str, float | None]:
    return {
        f"p{p}": (round(float(v), 3) if np.isfinite(v) else None)
        for p, v in zip((50, 95, 99), row, strict=True)
    }
