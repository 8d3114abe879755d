"""Knee of a load curve: where more load stops buying throughput, or starts costing latency.

Kneedle (Satopaa et al., "Finding a 'Kneedle' in a Haystack", ICDCS workshops 2011): scale
both axes to [0, 1] and take the point farthest from the straight line between the ends.
A saturating throughput curve is concave (its knee is above the line), a latency hockey
stick is convex (below it). Loads are usually stepped geometrically (8, 16, 32, ...), so the
load axis can be taken in log space, where those steps are evenly spaced.

`slo_limit` answers the planning question directly: the highest load whose value still met
a limit, with every lower load meeting it too (a limit met again after a breach is noise,
not capacity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Shape = Literal["concave", "convex"]


@dataclass(frozen=True)
class Knee:
    """The knee's load and value, its index in the curve and how pronounced it is (0..1)."""

    load: float
    value: float
    index: int
    strength: float


def find_knee(
    load: np.ndarray,
    value: np.ndarray,
    shape: Shape,
    log_load: bool = False,
    min_strength: float = 0.05,
    min_rise: float = 0.0,
) -> Knee | None:
    """Kneedle on an increasing load axis; None when the curve has no clear knee.

    concave: saturating throughput (rises, then flattens); convex: latency that stays flat,
    then climbs. `strength` is the largest normalised distance from the chord; a curve
    closer than `min_strength` to a straight line has no knee, and so has one whose values
    span less than `min_rise` times their smallest (Kneedle rescales any wiggle to [0, 1]:
    222, 228, 265 ms is not a knee worth naming).
    """
    x = np.asarray(load, dtype=np.float64)
    y = np.asarray(value, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    if log_load:
        keep &= x > 0
    x, y = x[keep], y[keep]
    idx_map = np.flatnonzero(keep)
    if x.size < 3:
        return None
    order = np.argsort(x, kind="mergesort")
    x, y, idx_map = x[order], y[order], idx_map[order]
    xs = np.log(x) if log_load else x
    span_x = xs[-1] - xs[0]
    span_y = float(y.max() - y.min())
    if span_x <= 0 or span_y <= 0:
        return None
    if min_rise > 0 and not span_y >= min_rise * max(abs(float(y.min())), 1e-12):
        return None
    xn = (xs - xs[0]) / span_x
    yn = (y - y.min()) / span_y
    # Distance above (concave) or below (convex) the chord from the first to the last point.
    chord = yn[0] + (yn[-1] - yn[0]) * xn
    diff = yn - chord if shape == "concave" else chord - yn
    i = int(np.argmax(diff))
    strength = float(diff[i])
    if strength < min_strength or i in (0, x.size - 1):
        return None
    return Knee(float(x[i]), float(y[i]), int(idx_map[i]), strength)


def slo_limit(load: np.ndarray, passed: np.ndarray) -> float | None:
    """The highest load such that it and every lower load passed; None if the lowest failed."""
    x = np.asarray(load, dtype=np.float64)
    ok = np.asarray(passed, dtype=bool)
    order = np.argsort(x, kind="mergesort")
    best: float | None = None
    for i in order:
        if not ok[i]:
            break
        best = float(x[i])
    return best


def saturation(load: np.ndarray, throughput: np.ndarray, efficiency: float = 0.5) -> float | None:
    """The first load whose step added less than `efficiency` of the throughput it would add
    if throughput scaled linearly with load from the previous step (None: it kept scaling)."""
    x = np.asarray(load, dtype=np.float64)
    y = np.asarray(throughput, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    x, y = x[order], y[order]
    for i in range(1, x.size):
        if not (math.isfinite(y[i - 1]) and y[i - 1] > 0 and x[i - 1] > 0 and x[i] > x[i - 1]):
            continue
        expected = y[i - 1] * (x[i] / x[i - 1] - 1.0)
        if y[i] - y[i - 1] < efficiency * expected:
            return float(x[i])
    return None
