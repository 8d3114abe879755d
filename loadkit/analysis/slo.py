"""SLOs per request and goodput (README: logical requests that succeeded and met every SLO).

A percentile SLO (`ttft p95 <= 1 s`) judges the run; goodput judges each request. A request
is good when it ended ok and its user-felt TTFT, E2E and mean ITL are each within the
loosest limit the SLO sets for that metric (the tail limit: with `{p50: 300, p95: 1000}` a
800 ms TTFT is a slow but acceptable answer, 1200 ms is not). Errors are never good.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from loadkit.analysis.requests import Logical


@dataclass(frozen=True)
class Limits:
    """Per-request limits in ms (None: no SLO on that metric) and the error-rate SLO."""

    ttft_ms: float | None = None
    e2e_ms: float | None = None
    itl_ms: float | None = None
    error_rate: float | None = None
    ttft_p95_ms: float | None = None  # the run-level p95 limit (recovery uses it)

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.e2e_ms, self.itl_ms, self.error_rate))


def _loosest(thresholds: Any) -> float | None:
    if not thresholds:
        return None
    return max(float(v) for v in dict(thresholds).values())


def _p95(thresholds: Any) -> float | None:
    if not thresholds:
        return None
    d = {str(k).lstrip("p"): float(v) for k, v in dict(thresholds).items()}
    if "95" in d:
        return d["95"]
    return max(d.values())


def limits_from(slo: Any | None) -> Limits:
    """Limits from a scenario `Slo` (or anything with the same attributes), None -> no SLO."""
    if slo is None:
        return Limits()
    return Limits(
        ttft_ms=_loosest(getattr(slo, "ttft_ms", None)),
        e2e_ms=_loosest(getattr(slo, "e2e_ms", None)),
        itl_ms=_loosest(getattr(slo, "itl_ms", None)),
        error_rate=getattr(slo, "error_rate", None),
        ttft_p95_ms=_p95(getattr(slo, "ttft_ms", None)),
    )


def good_mask(lr: Logical, lim: Limits) -> np.ndarray:
    """True for each logical request that succeeded and met every per-request limit."""
    good = lr.ok.copy()
    for limit, values in (
        (lim.ttft_ms, lr.ttft_ms),
        (lim.e2e_ms, lr.latency_ms),
        (lim.itl_ms, lr.itl_mean_ms),
    ):
        if limit is not None:
            # NaN (not measured, e.g. ITL of a one-chunk answer) does not fail the request
            good &= ~(values > limit)
    return good


def goodput(lr: Logical, lim: Limits, duration_s: float) -> dict[str, Any]:
    """Good requests per second and the share of requests that were good."""
    good = good_mask(lr, lim)
    n_good = int(good.sum())
    dur = max(float(duration_s), 1e-9)
    return {
        "good_requests": n_good,
        "goodput_per_s": round(n_good / dur, 4),
        "good_share": round(n_good / lr.n, 6) if lr.n else None,
        "limits_ms": {"ttft": lim.ttft_ms, "e2e": lim.e2e_ms, "itl": lim.itl_ms},
    }
