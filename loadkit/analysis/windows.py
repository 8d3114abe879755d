"""Time windows over a run: counts, sums, rates, percentiles and mean concurrency per window.

Times are ms from the run start (the record convention). A window is [edge_k, edge_k+1);
everything is computed with `np.bincount`/one sort, so a million records cost well under a
second per metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loadkit.analysis.stats import PCTS, grouped_percentiles

_NICE_S = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)


@dataclass(frozen=True)
class Windows:
    """Equal windows of `width_s` starting at `start_ms`."""

    start_ms: float
    width_s: float
    n: int

    @property
    def width_ms(self) -> float:
        return self.width_s * 1000.0

    @property
    def edges_ms(self) -> np.ndarray:
        return self.start_ms + np.arange(self.n + 1) * self.width_ms

    @property
    def mid_s(self) -> np.ndarray:
        """Window centres in seconds from the run start (the x axis of time charts)."""
        return (self.start_ms + (np.arange(self.n) + 0.5) * self.width_ms) / 1000.0

    def index(self, t_ms: np.ndarray) -> np.ndarray:
        """Window of each time; -1 outside (or NaN)."""
        t = np.asarray(t_ms, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            k = np.floor((t - self.start_ms) / self.width_ms)
        k = np.where(np.isfinite(k), k, -1).astype(np.int64)
        k[(k < 0) | (k >= self.n)] = -1
        return k


def nice_width_s(span_s: float, target: int = 60) -> float:
    """A round window width giving about `target` windows over `span_s` (at least 1 s)."""
    raw = max(span_s, 1e-9) / max(target, 1)
    for w in _NICE_S:
        if w >= raw:
            return float(w)
    return float(math.ceil(raw / 3600.0) * 3600)


def make_windows(
    t0_ms: float, t1_ms: float, width_s: float | None = None, target: int = 60
) -> Windows:
    """Windows covering [t0_ms, t1_ms]; the width is chosen when not given."""
    t0 = float(t0_ms) if math.isfinite(t0_ms) else 0.0
    t1 = float(t1_ms) if math.isfinite(t1_ms) else t0
    start = math.floor(max(t0, 0.0) / 1000.0) * 1000.0 if t0 >= 0 else t0
    w = float(width_s) if width_s else nice_width_s((t1 - start) / 1000.0, target)
    n = max(1, math.ceil((t1 - start) / (w * 1000.0)) or 1)
    if start + n * w * 1000.0 <= t1:
        n += 1
    return Windows(start, w, n)


def counts(win: Windows, t_ms: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Events per window (optionally only where `mask`)."""
    k = win.index(t_ms)
    if mask is not None:
        k = np.where(mask, k, -1)
    return np.bincount(k[k >= 0], minlength=win.n)[: win.n].astype(np.float64)


def sums(win: Windows, t_ms: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of the finite values per window."""
    k = win.index(t_ms)
    v = np.asarray(values, dtype=np.float64)
    ok = (k >= 0) & np.isfinite(v)
    return np.bincount(k[ok], weights=v[ok], minlength=win.n)[: win.n]


def rates(win: Windows, t_ms: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Events per second per window."""
    return counts(win, t_ms, mask) / win.width_s


def percentiles_over_time(
    win: Windows, t_ms: np.ndarray, values: np.ndarray, pcts: Sequence[float] = PCTS
) -> tuple[np.ndarray, np.ndarray]:
    """(table[n_windows, len(pcts)], counts) of `values` grouped by the window of `t_ms`."""
    return grouped_percentiles(win.index(t_ms), values, win.n, pcts)


def mean_concurrency(win: Windows, start_ms: np.ndarray, end_ms: np.ndarray) -> np.ndarray:
    """Time-averaged number of intervals [start, end) open in each window."""
    s = np.asarray(start_ms, dtype=np.float64)
    e = np.asarray(end_ms, dtype=np.float64)
    ok = np.isfinite(s) & np.isfinite(e) & (e >= s)
    s, e = s[ok], e[ok]
    if s.size == 0:
        return np.zeros(win.n)
    times = np.concatenate([s, e])
    steps = np.concatenate([np.ones(s.size), -np.ones(e.size)])
    order = np.argsort(times, kind="stable")
    times, steps = times[order], steps[order]
    level = np.cumsum(steps)  # open intervals just after each event
    area = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(times))])

    def area_at(t: np.ndarray) -> np.ndarray:
        j = np.searchsorted(times, t, side="right") - 1
        before = j < 0
        jj = np.clip(j, 0, None)
        a = area[jj] + level[jj] * (t - times[jj])
        return np.where(before, 0.0, a)

    edges = win.edges_ms
    return np.diff(area_at(edges)) / win.width_ms
