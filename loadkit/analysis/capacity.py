"""What a capacity search found: each measured step and the conclusion drawn from them.

The types `loadkit capacity` (orchestration) produces and `loadkit.report.capacity` draws:
they live here, in analysis, so the report reads them without reaching up into the
orchestrator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loadkit.analysis.knee import find_knee, slo_limit


@dataclass(frozen=True)
class StepResult:
    """One load level, measured on its steady part."""

    index: int
    level: float
    run_dir: str
    ok: bool
    breached: tuple[str, ...]
    checks: tuple[dict[str, Any], ...]
    warmup_s: float
    window_s: float
    requests: int
    ok_requests_per_s: float
    goodput_per_s: float | None  # requests/s that succeeded and met every per-request limit
    output_tokens_per_s: float
    error_rate: float
    ttft_p95_ms: float | None
    itl_p95_ms: float | None
    e2e_p95_ms: float | None
    cost_per_ok_request: float | None
    summary: dict[str, Any] = field(repr=False, default_factory=dict)
    # open loop: planned, sent and served arrivals/s, never sent, lag p95, kept_up, reason
    # (`loadkit.analysis.offered`); None for closed-loop steps
    offered: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "load": self.level,
            "run_dir": self.run_dir,
            "met_slo": self.ok,
            "breached": list(self.breached),
            "checks": list(self.checks),
            "warmup_s": self.warmup_s,
            "window_s": round(self.window_s, 3),
            "requests": self.requests,
            "ok_requests_per_s": round(self.ok_requests_per_s, 4),
            "goodput_per_s": self.goodput_per_s,
            "output_tokens_per_s": round(self.output_tokens_per_s, 2),
            "error_rate": round(self.error_rate, 6),
            "ttft_p95_ms": self.ttft_p95_ms,
            "itl_p95_ms": self.itl_p95_ms,
            "e2e_p95_ms": self.e2e_p95_ms,
            "cost_usd_per_ok_request": self.cost_per_ok_request,
            "offered": self.offered,
        }


@dataclass(frozen=True)
class CapacityResult:
    scenario: str
    kind: str  # users | rate
    steps: tuple[StepResult, ...]  # sorted by load
    capacity: float | None  # highest load that met every SLO with every lower load
    all_passed: bool
    planned_peak: float
    headroom: str
    throughput_knee: float | None
    latency_knee: float | None
    slo: dict[str, Any]

    @property
    def unit(self) -> str:
        return "users" if self.kind == "users" else "sessions/s"

    def at_capacity(self) -> StepResult | None:
        return next((s for s in self.steps if s.level == self.capacity), None)


def conclude(
    scenario_name: str, kind: str, steps: Sequence[StepResult], peak: float, slo: dict[str, Any]
) -> CapacityResult:
    """The answer from the measured steps: capacity, headroom against the peak, knees."""
    ordered = sorted(steps, key=lambda s: s.level)
    loads = np.array([s.level for s in ordered], dtype=np.float64)
    cap = slo_limit(loads, np.array([s.ok for s in ordered]))
    all_passed = bool(ordered) and all(s.ok for s in ordered)
    thr = np.array([s.ok_requests_per_s for s in ordered], dtype=np.float64)
    p95 = np.array([_nan(s.ttft_p95_ms) for s in ordered], dtype=np.float64)
    # A knee worth naming: throughput or p95 TTFT moves by at least half its lowest value.
    k_thr = find_knee(loads, thr, "concave", log_load=True, min_rise=0.5)
    k_lat = find_knee(loads, p95, "convex", log_load=True, min_rise=0.5)
    unit = "users" if kind == "users" else "sessions/s"
    return CapacityResult(
        scenario=scenario_name,
        kind=kind,
        steps=tuple(ordered),
        capacity=cap,
        all_passed=all_passed,
        planned_peak=peak,
        headroom=headroom_text(cap, peak, unit, all_passed),
        throughput_knee=k_thr.load if k_thr else None,
        latency_knee=k_lat.load if k_lat else None,
        slo=slo,
    )


def headroom_text(cap: float | None, peak: float, unit: str, all_passed: bool) -> str:
    """'the peak needs 2.3x the capacity you tested' or the headroom left above the peak."""
    if cap is None:
        return "no tested load met every SLO: start lower (--start or --levels)"
    if not peak > 0:
        more = "at least " if all_passed else ""
        return f"capacity {more}{cap:g} {unit}; the scenario names no peak (--peak)"
    ratio = peak / cap
    if ratio > 1.0:
        more = " (every step passed: test higher loads)" if all_passed else ""
        return (
            f"the planned peak ({peak:g} {unit}) needs {ratio:.1f}x the capacity you tested "
            f"({cap:g} {unit} met every SLO){more}"
        )
    if all_passed:
        return (
            f"every tested load met every SLO, up to {cap:g} {unit} ({cap / peak:.1f}x the "
            f"planned peak of {peak:g}); test higher loads to find the limit"
        )
    return (
        f"{cap:g} {unit} met every SLO: {cap / peak:.1f}x the planned peak of {peak:g} "
        f"(headroom {cap / peak - 1:.0%})"
    )


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)
