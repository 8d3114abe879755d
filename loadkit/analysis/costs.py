"""Cost analysis: spend per successful request, spend wasted on failures and retries, and a
monthly projection.

Cost per successful request divides everything spent (failed attempts and retries
included, DESIGN.md) by the logical requests that succeeded. Wasted spend is what failed
attempts cost; retry spend is what every attempt after the first cost, failed or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from loadkit.analysis.requests import Logical

SECONDS_PER_MONTH = 30 * 86_400


def cost_breakdown(cols: Mapping[str, np.ndarray], lr: Logical) -> dict[str, Any]:
    cost = np.nan_to_num(np.asarray(cols["cost_usd"], dtype=np.float64), nan=0.0)
    ok = np.asarray(cols["outcome"]) == "ok"
    retry = np.asarray(cols["attempt"], dtype=np.int64) > 0
    total = float(cost.sum())
    wasted = float(cost[~ok].sum())
    retries = float(cost[retry].sum())
    n_ok = int(lr.ok.sum())
    return {
        "total_usd": round(total, 8),
        "per_request_usd": round(total / lr.n, 10) if lr.n else None,
        "per_ok_request_usd": round(total / n_ok, 10) if n_ok else None,
        "wasted_usd": round(wasted, 8),
        "wasted_share": round(wasted / total, 6) if total > 0 else 0.0,
        "retry_usd": round(retries, 8),
        "retry_share": round(retries / total, 6) if total > 0 else 0.0,
        "retry_ok_usd": round(float(cost[retry & ok].sum()), 8),
        "priced": bool(total > 0),
    }


def monthly_projection(
    per_request_usd: float | None, peak_rps: float | None, mean_rps: float | None = None
) -> dict[str, Any] | None:
    """Monthly (30 day) spend at the scenario's peak rate, and at its mean rate if known."""
    if per_request_usd is None or peak_rps is None:
        return None
    out: dict[str, Any] = {
        "assumption": "measured cost per request x request rate x 30 days",
        "peak_requests_per_s": round(peak_rps, 4),
        "monthly_usd_at_peak": round(per_request_usd * peak_rps * SECONDS_PER_MONTH, 2),
    }
    if mean_rps is not None and abs(mean_rps - peak_rps) > 1e-9 * max(peak_rps, 1.0):
        out["mean_requests_per_s"] = round(mean_rps, 4)
        out["monthly_usd_at_mean"] = round(per_request_usd * mean_rps * SECONDS_PER_MONTH, 2)
    return out
