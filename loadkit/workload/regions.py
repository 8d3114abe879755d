"""Regions: who sends each request, and how an open-loop rate splits across regions.

Each region has a share of the traffic, a UTC offset and optionally its own daily curve
(follow-the-sun: every region's curve is in its local time). The aggregate rate is

    rate(t) = base(t) * sum_r share_r * m_r(utc_hour(t) + offset_r)

and each arrival goes to region r with probability share_r * m_r(...) / sum, evaluated at its
own time. Drawing one aggregate process keeps the configured arrival process (Poisson, or a
gamma CV) for the total traffic the target sees; per region it is thinned. With no daily
curves this reduces to plain shares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loadkit.workload.daily import DailyCurve, DayClock
from loadkit.workload.rates import Process, RateCurve, arrival_times


@dataclass(frozen=True)
class RegionLoad:
    """One region's part of the load."""

    name: str
    share: float
    utc_offset_h: float = 0.0
    daily: DailyCurve | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.share) and 0.0 < self.share <= 1.0):
            raise ValueError(f"share must be in (0, 1], got {self.share!r}")
        if not (math.isfinite(self.utc_offset_h) and -12.0 <= self.utc_offset_h <= 14.0):
            raise ValueError(f"utc_offset_h must be in [-12, 14], got {self.utc_offset_h!r}")

    def multiplier(self, t_s: np.ndarray, clock: DayClock | None) -> np.ndarray:
        t = np.asarray(t_s, dtype=np.float64)
        if self.daily is None or clock is None:
            return np.ones_like(t)
        return self.daily.multiplier(clock.utc_hour(t), self.utc_offset_h)


def _check_shares(shares: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(shares, dtype=np.float64).ravel()
    if p.size == 0:
        raise ValueError("at least one region share is needed")
    if not np.all(np.isfinite(p)) or np.any(p <= 0):
        raise ValueError("region shares must be > 0")
    if abs(p.sum() - 1.0) > 1e-6:
        raise ValueError(f"region shares must sum to 1, got {p.sum():g}")
    return p / p.sum()


def assign_regions(
    shares: Sequence[float] | np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Region index (0..len(shares)-1) for each of `n` requests, drawn by share."""
    p = _check_shares(shares)
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    return np.searchsorted(cdf, rng.uniform(size=int(n)), side="right").astype(np.int64)


def validate_regions(regions: Sequence[RegionLoad]) -> None:
    """Shares must sum to 1 and names be unique."""
    _check_shares([r.share for r in regions])
    names = [r.name for r in regions]
    if len(set(names)) != len(names):
        raise ValueError(f"region names must be unique, got {names}")


def region_curves(
    base: RateCurve,
    regions: Sequence[RegionLoad],
    clock: DayClock | None = None,
    until_s: float | None = None,
    per_hour: int = 12,
) -> list[RateCurve]:
    """Each region's own rate curve: base x share x its daily curve at its UTC offset."""
    validate_regions(regions)
    out = []
    for r in regions:
        if r.daily is None or clock is None:
            out.append(base.scaled(r.share))
        else:
            out.append(
                base.multiply(
                    lambda t, r=r: r.share * r.multiplier(t, clock),
                    clock.step_s(per_hour),
                    until_s,
                )
            )
    return out


def total_curve(
    base: RateCurve,
    regions: Sequence[RegionLoad],
    clock: DayClock | None = None,
    until_s: float | None = None,
    per_hour: int = 12,
) -> RateCurve:
    """The aggregate rate of all regions (see the module docstring)."""
    validate_regions(regions)
    if clock is None or all(r.daily is None for r in regions):
        return base

    def factor(t: np.ndarray) -> np.ndarray:
        return np.sum([r.share * r.multiplier(t, clock) for r in regions], axis=0)

    return base.multiply(factor, clock.step_s(per_hour), until_s)


def region_weights(
    t_s: np.ndarray, regions: Sequence[RegionLoad], clock: DayClock | None
) -> np.ndarray:
    """(len(t_s), len(regions)) probabilities that an arrival at each time is each region's."""
    t = np.asarray(t_s, dtype=np.float64)
    w = np.stack([r.share * r.multiplier(t, clock) for r in regions], axis=1)
    s = w.sum(axis=1, keepdims=True)
    shares = np.array([r.share for r in regions])
    return np.where(s > 0, w / np.where(s > 0, s, 1.0), shares / shares.sum())


def regional_arrivals(
    base: RateCurve,
    regions: Sequence[RegionLoad],
    t_end_s: float,
    rng: np.random.Generator,
    process: Process = "poisson",
    cv: float = 1.0,
    clock: DayClock | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times in [0, t_end_s) and the region index of each."""
    curve = total_curve(base, regions, clock, until_s=t_end_s)
    t = arrival_times(curve, t_end_s, process, cv, rng)
    w = region_weights(t, regions, clock)
    cdf = np.cumsum(w, axis=1)
    cdf[:, -1] = 1.0
    u = rng.uniform(size=(t.size, 1))
    idx = (u >= cdf).sum(axis=1).astype(np.int64)
    return t, idx
