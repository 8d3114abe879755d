"""Cost analysis: spend per successful request, spend wasted on failures and retries, and a
monthly projection.

Cost per successful request divides everything spent (failed attempts and retries
included; README, "Metric definitions") by the logical requests that succeeded. Wasted
spend is what failed attempts cost; retry spend is what every attempt after the first
cost, failed or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from loadkit.analysis.requests import Logical

SECONDS_PER_MONTH = 30 * 86_400
RATE_TOLERANCE = 0.05  # measured vs planned request rate: a larger gap is shown


def cost_breakdown(cols: Mapping[str, np.ndarray], lr: Logical) -> dict[str, Any]:
    raw = np.asarray(cols["cost_usd"], dtype=np.float64)
    priced = bool(np.isfinite(raw).any())  # no price known: every cost cell is empty
    cost = np.nan_to_num(raw, nan=0.0)
    ok = np.asarray(cols["outcome"]) == "ok"
    retry = np.asarray(cols["attempt"], dtype=np.int64) > 0
    total = float(cost.sum())
    wasted = float(cost[~ok].sum())
    retries = float(cost[retry].sum())
    n_ok = int(lr.ok.sum())
    return {
        "total_usd": round(total, 8) if priced else None,
        "per_request_usd": round(total / lr.n, 10) if lr.n and priced else None,
        "per_ok_request_usd": round(total / n_ok, 10) if n_ok and priced else None,
        "wasted_usd": round(wasted, 8),
        "wasted_share": round(wasted / total, 6) if total > 0 else 0.0,
        "retry_usd": round(retries, 8),
        "retry_share": round(retries / total, 6) if total > 0 else 0.0,
        "retry_ok_usd": round(float(cost[retry & ok].sum()), 8),
        "priced": priced,
    }


def monthly_projection(
    per_request_usd: float | None,
    measured_rps: float | None,
    peak_rps: float | None = None,
    mean_rps: float | None = None,
) -> dict[str, Any] | None:
    """Monthly (30 day) spend at the request rate this run measured, the planned ones beside.

    The measured rate leads: a service that answered faster (or a scenario whose arrivals
    came out denser) than planned costs what it served, not what was planned. When the
    two differ by more than `RATE_TOLERANCE` the projection says so in `rate_note`.
    """
    if per_request_usd is None or not measured_rps:
        return None
    month = per_request_usd * SECONDS_PER_MONTH
    out: dict[str, Any] = {
        "assumption": "measured cost per request x measured request rate x 30 days",
        "measured_requests_per_s": round(measured_rps, 4),
        "monthly_usd": round(month * measured_rps, 2),
    }
    if peak_rps is not None:
        out["planned_peak_requests_per_s"] = round(peak_rps, 4)
        out["monthly_usd_at_planned_peak"] = round(month * peak_rps, 2)
    if mean_rps is not None and (peak_rps is None or abs(mean_rps - peak_rps) > 1e-9 * peak_rps):
        out["planned_mean_requests_per_s"] = round(mean_rps, 4)
        out["monthly_usd_at_planned_mean"] = round(month * mean_rps, 2)
    planned = mean_rps if mean_rps is not None else peak_rps
    if planned and abs(measured_rps / planned - 1.0) > RATE_TOLERANCE:
        out["rate_note"] = (
            f"measured {measured_rps:.2f} requests/s, planned {planned:.2f} "
            f"(x{measured_rps / planned:.2f})"
        )
    return out
