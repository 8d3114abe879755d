"""Distributions for token counts, turns and think times.

Each distribution is a frozen dataclass with `sample(rng, n)`, `mean()` and `quantile(q)`.
Parameters are validated on construction with a plain `ValueError` message; the scenario
loader adds the file and line.

`LogNormal` is given by its median and 90th percentile because those are the figures people
publish and can read off a dashboard (e.g. Azure conv 2023: input tokens p50 1020, p90 2735).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

_STD_NORMAL = NormalDist()
_Z90 = _STD_NORMAL.inv_cdf(0.9)


def _finite(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return v


def _check_q(q: float) -> float:
    q = float(q)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile: q must be in [0, 1], got {q}")
    return q


def _check_n(n: int) -> int:
    if int(n) != n or n < 0:
        raise ValueError(f"sample size must be a non-negative integer, got {n!r}")
    return int(n)


@dataclass(frozen=True)
class Constant:
    """Always `value`."""

    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _finite("value", self.value))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.full(_check_n(n), self.value, dtype=np.float64)

    def mean(self) -> float:
        return self.value

    def quantile(self, q: float) -> float:
        _check_q(q)
        return self.value


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high]."""

    low: float
    high: float

    def __post_init__(self) -> None:
        low = _finite("low", self.low)
        high = _finite("high", self.high)
        if high < low:
            raise ValueError(f"high must be >= low, got low={low:g}, high={high:g}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, _check_n(n))

    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    def quantile(self, q: float) -> float:
        return self.low + _check_q(q) * (self.high - self.low)


@dataclass(frozen=True, init=False)
class Normal:
    """Normal with mean and standard deviation.

    Built as `Normal(mean, std)`; the mean is stored as `mu` because `mean()` is the common
    method every distribution has.
    """

    mu: float
    std: float

    def __init__(self, mean: float, std: float) -> None:
        mu = _finite("mean", mean)
        sd = _finite("std", std)
        if sd < 0:
            raise ValueError(f"std must be >= 0, got {sd:g}")
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "std", sd)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.normal(self.mu, self.std, _check_n(n))

    def mean(self) -> float:
        return self.mu

    def quantile(self, q: float) -> float:
        q = _check_q(q)
        if self.std == 0.0:
            return self.mu
        if q in (0.0, 1.0):
            return -math.inf if q == 0.0 else math.inf
        return self.mu + self.std * _STD_NORMAL.inv_cdf(q)


@dataclass(frozen=True)
class LogNormal:
    """Log-normal given by its median and 90th percentile (p90 > median > 0)."""

    median: float
    p90: float

    def __post_init__(self) -> None:
        median = _finite("median", self.median)
        p90 = _finite("p90", self.p90)
        if median <= 0:
            raise ValueError(f"median must be > 0, got {median:g}")
        if p90 <= median:
            raise ValueError(f"p90 must exceed median, got median={median:g}, p90={p90:g}")
        object.__setattr__(self, "median", median)
        object.__setattr__(self, "p90", p90)

    @property
    def mu(self) -> float:
        """Mean of the underlying normal (log scale)."""
        return math.log(self.median)

    @property
    def sigma(self) -> float:
        """Standard deviation of the underlying normal (log scale)."""
        return math.log(self.p90 / self.median) / _Z90

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.lognormal(self.mu, self.sigma, _check_n(n))

    def mean(self) -> float:
        return math.exp(self.mu + 0.5 * self.sigma**2)

    def quantile(self, q: float) -> float:
        q = _check_q(q)
        if q == 0.0:
            return 0.0
        if q == 1.0:
            return math.inf
        return math.exp(self.mu + self.sigma * _STD_NORMAL.inv_cdf(q))


@dataclass(frozen=True, repr=False)
class Empirical:
    """Draws with replacement from observed values (e.g. a trace column).

    `quantile` uses numpy's default (linear) interpolation on the observed values.
    """

    values: tuple[float, ...]
    _array: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        arr = np.asarray(self.values, dtype=np.float64).ravel()
        if arr.size == 0:
            raise ValueError("values: an empirical distribution needs at least one value")
        if not np.all(np.isfinite(arr)):
            raise ValueError("values: all values must be finite numbers")
        arr.setflags(write=False)
        object.__setattr__(self, "values", tuple(arr.tolist()))
        object.__setattr__(self, "_array", np.sort(arr))

    @classmethod
    def from_values(cls, values: Iterable[float] | np.ndarray) -> Empirical:
        return cls(tuple(np.asarray(values, dtype=np.float64).ravel().tolist()))

    @classmethod
    def from_trace(cls, trace: object, column: str = "input_tokens") -> Empirical:
        """From a `Trace` column (`input_tokens` or `output_tokens`), failed rows left out.

        `trace` may also be a path; its format is then guessed from the file name.
        """
        from loadkit.workload.traces import Trace, read_trace

        if not isinstance(trace, Trace):
            trace = read_trace(trace)  # type: ignore[arg-type]
        if column not in ("input_tokens", "output_tokens"):
            raise ValueError(f"column must be input_tokens or output_tokens, got {column!r}")
        ok = trace.ok()
        values = getattr(ok, column)
        if values.size == 0:
            raise ValueError(f"trace has no successful rows to take {column} from")
        return cls.from_values(values)

    def __repr__(self) -> str:
        a = self._array
        return f"Empirical(n={a.size}, min={a[0]:g}, median={np.median(a):g}, max={a[-1]:g})"

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        idx = rng.integers(0, self._array.size, _check_n(n))
        return self._array[idx]

    def mean(self) -> float:
        return float(self._array.mean())

    def quantile(self, q: float) -> float:
        return float(np.quantile(self._array, _check_q(q)))


Distribution = Constant | Uniform | Normal | LogNormal | Empirical


def sample_counts(
    dist: Distribution,
    rng: np.random.Generator,
    n: int,
    low: int = 1,
    high: int | None = None,
) -> np.ndarray:
    """Whole counts (tokens, turns): samples rounded to the nearest integer and clipped."""
    if high is not None and high < low:
        raise ValueError(f"high must be >= low, got low={low}, high={high}")
    x = np.rint(dist.sample(rng, n))
    np.clip(x, low, high if high is not None else np.inf, out=x)
    return x.astype(np.int64)
