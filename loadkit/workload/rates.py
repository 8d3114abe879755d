"""Open-loop arrival rates and arrival times.

A `RateCurve` is a piecewise-linear request rate over run time. Phases (steps), ramps and a
daily curve all become one curve, and one method turns any curve into arrival times: time
rescaling. Draw a unit-rate renewal process (exponential gaps for Poisson, gaps of exactly 1
for constant, gamma gaps with the requested coefficient of variation) and map each point u
through the inverse cumulative rate, t = Lambda^-1(u). Its local rate is then rate(t) and its
gaps keep their CV wherever the rate is locally constant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Process = Literal["poisson", "constant", "gamma"]
PROCESSES: tuple[str, ...] = ("poisson", "constant", "gamma")


@dataclass(frozen=True)
class RateCurve:
    """Rate in requests/s at knots `times_s` (starting at 0, non-decreasing), linear between.

    Two knots at the same time make a step. After the last knot the last rate holds.
    """

    times_s: tuple[float, ...]
    rates: tuple[float, ...]
    _t: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _r: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _cum: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _s: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        t = np.asarray(self.times_s, dtype=np.float64).ravel()
        r = np.asarray(self.rates, dtype=np.float64).ravel()
        if t.size == 0 or t.size != r.size:
            raise ValueError(
                "times_s and rates must be non-empty and of equal length, "
                f"got {t.size} and {r.size}"
            )
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(r))):
            raise ValueError("times_s and rates must be finite numbers")
        if t[0] != 0.0:
            raise ValueError(f"times_s must start at 0, got {t[0]:g}")
        if np.any(np.diff(t) < 0):
            raise ValueError("times_s must be non-decreasing")
        if np.any(r < 0):
            raise ValueError(f"rates must be >= 0, got {r.min():g}")
        dt = np.diff(t)
        cum = np.concatenate(([0.0], np.cumsum(0.5 * (r[:-1] + r[1:]) * dt)))
        # slope of the segment starting at each knot (0 for steps and after the last knot)
        slope = np.zeros_like(t)
        pos = dt > 0
        slope[:-1][pos] = np.diff(r)[pos] / dt[pos]
        for name, arr in (("_t", t), ("_r", r), ("_cum", cum), ("_s", slope)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "times_s", tuple(t.tolist()))
        object.__setattr__(self, "rates", tuple(r.tolist()))

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def constant(cls, rate: float, duration_s: float = 0.0) -> RateCurve:
        return cls((0.0, float(duration_s)), (float(rate), float(rate)))

    @classmethod
    def from_phases(cls, phases: Sequence[tuple[float, float, float]]) -> RateCurve:
        """From `(duration_s, start_rate, end_rate)` phases in order (equal rates: a step)."""
        if not phases:
            raise ValueError("at least one phase is needed")
        times: list[float] = []
        rates: list[float] = []
        t = 0.0
        for i, (dur, r0, r1) in enumerate(phases):
            if not dur > 0:
                raise ValueError(f"phases[{i}]: duration must be > 0, got {dur!r}")
            times += [t, t + float(dur)]
            rates += [float(r0), float(r1)]
            t += float(dur)
        return cls(tuple(times), tuple(rates))

    # -- evaluation --------------------------------------------------------------------------

    @property
    def end_s(self) -> float:
        """Time of the last knot."""
        return float(self._t[-1])

    def rate(self, t: float | np.ndarray) -> np.ndarray | float:
        """Rate at run time `t` (right-continuous at steps)."""
        ta = np.asarray(t, dtype=np.float64)
        k = self._segment(ta)
        t0, r0, slope = self._t[k], self._r[k], self._s[k]
        out = r0 + slope * (ta - t0)
        return float(out) if np.ndim(t) == 0 else out

    def cumulative(self, t: float | np.ndarray) -> np.ndarray | float:
        """Expected number of arrivals in [0, t]: the integral of the rate."""
        ta = np.asarray(t, dtype=np.float64)
        if np.any(ta < 0):
            raise ValueError("cumulative: t must be >= 0")
        k = self._segment(ta)
        x = ta - self._t[k]
        r, s = self._r[k], self._s[k]
        # a zero rate or slope adds nothing, also at t = inf (where 0 * inf would be NaN)
        with np.errstate(invalid="ignore"):
            out = (
                self._cum[k] + np.where(r > 0, r * x, 0.0) + np.where(s != 0, 0.5 * s * x * x, 0.0)
            )
        return float(out) if np.ndim(t) == 0 else out

    def expected_count(self, t_end_s: float) -> float:
        return float(self.cumulative(t_end_s))

    def inverse_cumulative(self, u: np.ndarray) -> np.ndarray:
        """Run time at which the cumulative rate reaches each `u` (inf if it never does)."""
        u = np.asarray(u, dtype=np.float64)
        cum = self._cum
        # Segment k holds cum[k] < u <= cum[k+1]; zero-rate segments are skipped by 'left'.
        k = np.clip(np.searchsorted(cum, u, side="left") - 1, 0, cum.size - 1)
        # k == last knot only when u is beyond cum[-1]: the last rate holds there (slope 0).
        d = np.maximum(u - cum[k], 0.0)
        r = self._r[k]
        s = self._s[k]
        # x solves r*x + s*x^2/2 = d: x = 2d / (r + sqrt(r^2 + 2sd)). The root is taken as
        # m * sqrt((r/m)^2 +- (q/m)^2) with q = sqrt(2|s|) * sqrt(d) and m = max(r, q), so no
        # term underflows to 0 for a tiny (even subnormal) u on a ramp up from rate 0, where
        # r^2 + 2sd would round to 0 and x to inf.
        q = np.sqrt(2.0 * np.abs(s)) * np.sqrt(d)
        m = np.maximum(r, q)
        with np.errstate(divide="ignore", invalid="ignore"):
            rr = np.where(m > 0, r / m, 0.0)
            qq = np.where(m > 0, q / m, 0.0)
            root = m * np.sqrt(np.maximum(rr * rr + np.sign(s) * qq * qq, 0.0))
            denom = r + root
            x = np.where(d <= 0, 0.0, np.where(denom > 0, 2.0 * d / denom, np.inf))
        return self._t[k] + x

    def multiply(
        self, fn: Callable[[np.ndarray], np.ndarray], step_s: float, until_s: float | None = None
    ) -> RateCurve:
        """This curve times `fn(t)`, sampled at every knot and every `step_s` up to `until_s`.

        Used for the daily curve: a smooth factor becomes a fine piecewise-linear curve. Past
        `until_s` (default: the last knot) the last value holds, as for any curve.
        """
        if not step_s > 0:
            raise ValueError(f"step_s must be > 0, got {step_s!r}")
        end = max(self.end_s, float(until_s) if until_s is not None else 0.0)
        grid = np.arange(0.0, end + step_s, step_s)
        grid = grid[(grid <= end) & ~np.isin(grid, self._t)]
        t = np.concatenate((self._t, grid))
        base = np.concatenate((self._r, np.asarray(self.rate(grid))))
        order = np.argsort(t, kind="stable")  # knots keep their order, so steps survive
        t, base = t[order], base[order]
        factor = np.asarray(fn(t), dtype=np.float64)
        if factor.shape != t.shape or not np.all(np.isfinite(factor)) or np.any(factor < 0):
            raise ValueError("multiply: the factor must be finite, >= 0 and one value per time")
        return RateCurve(tuple(t.tolist()), tuple((base * factor).tolist()))

    def scaled(self, k: float) -> RateCurve:
        """Every rate times `k` (e.g. a region's share)."""
        if not k >= 0:
            raise ValueError(f"scale must be >= 0, got {k!r}")
        return RateCurve(self.times_s, tuple((self._r * k).tolist()))

    # -- internals ---------------------------------------------------------------------------

    def _segment(self, t: np.ndarray) -> np.ndarray:
        """Index of the knot starting the segment holding t (the last of equal-time knots)."""
        return np.clip(np.searchsorted(self._t, t, side="right") - 1, 0, self._t.size - 1)


def _unit_gaps(process: str, cv: float, rng: np.random.Generator, n: int) -> np.ndarray:
    if process == "poisson":
        return rng.exponential(1.0, n)
    if process == "constant":
        return np.ones(n)
    shape = 1.0 / (cv * cv)
    return rng.gamma(shape, 1.0 / shape, n)


def _first_point(process: str, cv: float, rng: np.random.Generator) -> float:
    """Forward recurrence time of a stationary renewal process with unit mean gap.

    The gap covering a random instant is length-biased (Gamma(k+1) for Gamma(k) gaps, 1 for
    constant gaps); the instant falls uniformly inside it. So the run starts mid-stream instead
    of with an arrival at t=0.
    """
    u = rng.uniform()
    if process == "constant":
        return u
    if process == "poisson":
        return u * rng.gamma(2.0, 1.0)
    shape = 1.0 / (cv * cv)
    return u * rng.gamma(shape + 1.0, 1.0 / shape)


def arrival_times(
    curve: RateCurve,
    t_end_s: float,
    process: Process = "poisson",
    cv: float = 1.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Sorted arrival times in [0, t_end_s) for an open-loop process following `curve`.

    `cv` is the coefficient of variation of the gaps for `gamma` (> 0); `poisson` has CV 1 and
    `constant` CV 0, and ignore it.
    """
    if process not in PROCESSES:
        raise ValueError(f"process must be one of {', '.join(PROCESSES)}, got {process!r}")
    if process == "gamma" and not (cv > 0 and math.isfinite(cv)):
        raise ValueError(f"cv must be > 0 for gamma arrivals, got {cv!r}")
    if not t_end_s >= 0:
        raise ValueError(f"t_end_s must be >= 0, got {t_end_s!r}")
    if rng is None:
        raise ValueError("arrival_times needs a seeded numpy Generator")
    total = curve.expected_count(t_end_s)
    if total <= 0:
        return np.empty(0, dtype=np.float64)
    spread = max(cv, 1.0) if process == "gamma" else 1.0
    chunk = int(total + 6.0 * spread * math.sqrt(total) + 16)
    first = _first_point(process, cv, rng)
    pieces = [first + np.concatenate(([0.0], np.cumsum(_unit_gaps(process, cv, rng, chunk - 1))))]
    while pieces[-1][-1] < total:
        last = pieces[-1][-1]
        pieces.append(last + np.cumsum(_unit_gaps(process, cv, rng, chunk)))
    u = np.concatenate(pieces)
    u = u[u < total]
    t = curve.inverse_cumulative(u)
    return t[t < t_end_s]
