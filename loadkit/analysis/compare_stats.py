"""Statistics for comparing runs: percentile CIs, significance tests, multiple testing.

The statistics, and why these:

- Percentile CIs by bootstrap, without resampling the data. Resampling n values from the
  empirical distribution is `F_n^-1(U_i)` with uniform U; the k-th order statistic of the
  resample is therefore `F_n^-1(U_(k))`, and `U_(k) ~ Beta(k, n - k + 1)`. Drawing that Beta
  (and the next order statistic, for the linear interpolation `numpy.percentile` uses) gives
  exactly the bootstrap distribution of the percentile in O(B) after one sort, so a million
  records cost no more than a thousand.
- The CI of a ratio of percentiles (run B over run A) is the percentile interval of the
  ratio of independent bootstrap draws of each run.
- Distribution shift: the Mann-Whitney U test (normal approximation with tie correction),
  which asks whether a request of one run tends to be slower than one of the other. It does
  not assume normal latencies, which they never are.
- Rates (failed requests): the two-proportion z-test, CI of the ratio by the log method.
- Cost per successful request: total cost (failed attempts included) / successful requests,
  a ratio estimator; its variance by the delta method, the CI of the ratio on the log scale.
- Many rows are tested at once: p-values are adjusted by Holm's step-down method before a
  row is called significant, so a long table does not manufacture findings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from loadkit.analysis.stats import percentiles

if TYPE_CHECKING:
    from loadkit.analysis.compare import RunSample

CONFIDENCE = 0.95
N_BOOT = 4000
ALPHA = 0.05


# -- bootstrap of a percentile ------------------------------------------------------------


def bootstrap_percentile(
    sorted_values: np.ndarray, pct: float, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """`n_boot` bootstrap draws of `np.percentile(values, pct)` (values sorted, finite).

    Exact in distribution to resampling the values with replacement and taking the
    percentile of each resample (see the module docstring), but costs O(n_boot).
    """
    x = np.asarray(sorted_values, dtype=np.float64)
    n = x.size
    if n == 0:
        return np.full(n_boot, np.nan)
    if n == 1:
        return np.full(n_boot, x[0])
    h = (n - 1) * (float(pct) / 100.0)
    lo = math.floor(h)
    frac = h - lo
    k = lo + 1  # 1-based order statistic below the interpolation point
    u_k = rng.beta(k, n - k + 1, size=n_boot)
    v_lo = _inverse_ecdf(x, u_k)
    if frac == 0.0 or k >= n:
        return v_lo
    # Next order statistic: the smallest of the n - k uniforms above U_(k).
    u_next = u_k + (1.0 - u_k) * rng.beta(1.0, n - k, size=n_boot)
    v_hi = _inverse_ecdf(x, u_next)
    return v_lo + frac * (v_hi - v_lo)


def _inverse_ecdf(sorted_x: np.ndarray, u: np.ndarray) -> np.ndarray:
    n = sorted_x.size
    idx = np.ceil(u * n).astype(np.int64) - 1
    return sorted_x[np.clip(idx, 0, n - 1)]


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval."""

    value: float
    low: float
    high: float

    def as_dict(self, digits: int = 6) -> dict[str, float | None]:
        return {
            "value": rounded(self.value, digits),
            "low": rounded(self.low, digits),
            "high": rounded(self.high, digits),
        }


def percentile_ci(
    values: np.ndarray,
    pct: float,
    rng: np.random.Generator,
    n_boot: int = N_BOOT,
    confidence: float = CONFIDENCE,
) -> Interval:
    """The percentile of the finite values with a bootstrap percentile-interval CI."""
    x = _sorted_finite(values)
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    point = float(percentiles(x, (pct,))[0])
    draws = bootstrap_percentile(x, pct, n_boot, rng)
    lo, hi = _interval(draws, confidence)
    return Interval(point, lo, hi)


def percentile_ratio_ci(
    a: np.ndarray,
    b: np.ndarray,
    pct: float,
    rng: np.random.Generator,
    n_boot: int = N_BOOT,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Ratio of the `pct` percentile of b over that of a, with a bootstrap CI.

    NaN when either side is empty or a's percentile is not positive.
    """
    xa, xb = _sorted_finite(a), _sorted_finite(b)
    if xa.size == 0 or xb.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    pa = float(percentiles(xa, (pct,))[0])
    pb = float(percentiles(xb, (pct,))[0])
    if not pa > 0:
        return Interval(math.nan, math.nan, math.nan)
    da = bootstrap_percentile(xa, pct, n_boot, rng)
    db = bootstrap_percentile(xb, pct, n_boot, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = db / da
    ratio = ratio[np.isfinite(ratio)]
    if ratio.size < n_boot // 2:
        return Interval(pb / pa, math.nan, math.nan)
    lo, hi = _interval(ratio, confidence)
    return Interval(pb / pa, lo, hi)


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(draws, (tail, 100.0 - tail))
    return float(lo), float(hi)


def _sorted_finite(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return np.sort(v[np.isfinite(v)])


# -- significance tests -------------------------------------------------------------------


@dataclass(frozen=True)
class TestResult:
    """A two-sided test: its statistic, p-value and the effect it measured."""

    name: str
    statistic: float
    p_value: float
    effect: float  # Mann-Whitney: P(b > a) + P(b = a) / 2; proportions: rate_b - rate_a


def mann_whitney_u(a: np.ndarray, b: np.ndarray) -> TestResult:
    """Two-sided Mann-Whitney U test (normal approximation, tie-corrected, continuity).

    `effect` is the common-language effect size P(B > A) + P(B = A)/2: 0.5 means neither
    run's requests tend to be slower; 0.9 means a B request is slower than an A request
    nine times in ten.
    """
    xa = np.asarray(a, dtype=np.float64)
    xb = np.asarray(b, dtype=np.float64)
    xa = xa[np.isfinite(xa)]
    xb = xb[np.isfinite(xb)]
    n1, n2 = xa.size, xb.size
    if n1 == 0 or n2 == 0:
        return TestResult("mann-whitney", math.nan, math.nan, math.nan)
    both = np.concatenate([xa, xb])
    ranks, tie_term = _ranks(both)
    r2 = float(ranks[n1:].sum())
    u2 = r2 - n2 * (n2 + 1) / 2.0  # pairs where b > a (ties count half)
    n = n1 + n2
    mu = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    effect = u2 / (n1 * n2)
    if var <= 0:
        return TestResult("mann-whitney", u2, 1.0, effect)
    z = (abs(u2 - mu) - 0.5) / math.sqrt(var)
    z = max(z, 0.0)
    p = math.erfc(z / math.sqrt(2.0))
    return TestResult("mann-whitney", u2, min(1.0, p), effect)


def _ranks(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Mid-ranks (1-based) and the tie correction sum(t^3 - t) over tie groups."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    n = xs.size
    new = np.ones(n, dtype=bool)
    new[1:] = xs[1:] != xs[:-1]
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, n))
    mid = starts + (sizes + 1) / 2.0  # mean of 1-based positions start+1 .. start+size
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(mid, sizes)
    t = sizes.astype(np.float64)
    return ranks, float((t**3 - t).sum())


def two_proportion_z(k_a: int, n_a: int, k_b: int, n_b: int) -> TestResult:
    """Two-sided z-test that two rates (k/n) are equal, pooled variance."""
    if n_a == 0 or n_b == 0:
        return TestResult("two-proportion z", math.nan, math.nan, math.nan)
    pa, pb = k_a / n_a, k_b / n_b
    pooled = (k_a + k_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    if se == 0:
        return TestResult("two-proportion z", 0.0, 1.0, pb - pa)
    z = (pb - pa) / se
    return TestResult("two-proportion z", z, math.erfc(abs(z) / math.sqrt(2.0)), pb - pa)


def rate_ratio_ci(
    k_a: int, n_a: int, k_b: int, n_b: int, confidence: float = CONFIDENCE
) -> Interval:
    """Ratio of two rates with the log-method CI (0.5 added to empty cells)."""
    if n_a == 0 or n_b == 0:
        return Interval(math.nan, math.nan, math.nan)
    ka, kb = (k_a, k_b) if k_a > 0 and k_b > 0 else (k_a + 0.5, k_b + 0.5)
    if k_a == 0 and k_b == 0:
        return Interval(math.nan, math.nan, math.nan)
    ratio = (kb / n_b) / (ka / n_a)
    se = math.sqrt(max(1.0 / kb - 1.0 / n_b + 1.0 / ka - 1.0 / n_a, 0.0))
    z = _z(confidence)
    point = (k_b / n_b) / (k_a / n_a) if k_a > 0 else math.inf
    return Interval(point, ratio * math.exp(-z * se), ratio * math.exp(z * se))


def _ratio_estimate(cost: np.ndarray, ok: np.ndarray) -> tuple[float, float]:
    """Cost per successful request R = sum(cost) / sum(ok) and its variance (delta method)."""
    c = np.asarray(cost, dtype=np.float64)
    o = np.asarray(ok, dtype=np.float64)
    n = c.size
    if n < 2 or o.sum() == 0:
        return math.nan, math.nan
    r = float(c.sum() / o.sum())
    resid = c - r * o
    return r, float(resid.var(ddof=1)) / (n * float(o.mean()) ** 2)


def cost_per_ok_ci(run: RunSample, confidence: float = CONFIDENCE) -> Interval:
    """One run's cost per successful request with its CI (ratio estimator, delta method)."""
    r, var = _ratio_estimate(run.cost_req, run.ok_req)
    if not (math.isfinite(r) and math.isfinite(var)):
        return Interval(r, math.nan, math.nan)
    half = _z(confidence) * math.sqrt(var)
    return Interval(r, r - half, r + half)


def cost_ratio_ci(
    cost_a: np.ndarray,
    ok_a: np.ndarray,
    cost_b: np.ndarray,
    ok_b: np.ndarray,
    confidence: float = CONFIDENCE,
) -> tuple[Interval, TestResult]:
    """Cost per successful request (failed attempts' cost included) of b over a.

    A ratio estimator per run (delta-method variance), a z-test on the difference, and the
    CI of the ratio on the log scale.
    """
    ra, va = _ratio_estimate(cost_a, ok_a)
    rb, vb = _ratio_estimate(cost_b, ok_b)
    nan = Interval(math.nan, math.nan, math.nan)
    if not (math.isfinite(ra) and math.isfinite(rb)):
        return nan, TestResult("ratio-estimator z", math.nan, math.nan, math.nan)
    se = math.sqrt(va + vb)
    if se > 0:
        z = (rb - ra) / se
        test = TestResult("ratio-estimator z", z, math.erfc(abs(z) / math.sqrt(2.0)), rb - ra)
    else:
        same = math.isclose(ra, rb, rel_tol=1e-9, abs_tol=1e-15)
        test = TestResult("ratio-estimator z", 0.0, 1.0 if same else 0.0, rb - ra)
    if not (ra > 0 and rb > 0):
        return nan, test
    se_log = math.sqrt(va / ra**2 + vb / rb**2)
    zc = _z(confidence)
    ratio = rb / ra
    return Interval(ratio, ratio * math.exp(-zc * se_log), ratio * math.exp(zc * se_log)), test


def _z(confidence: float) -> float:
    """The standard normal quantile for a two-sided interval (bisection on erfc)."""
    target = 1.0 - confidence
    lo, hi = 0.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if math.erfc(mid / math.sqrt(2.0)) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (NaN stays NaN)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.size, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="mergesort")]
    m = order.size
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out


def rounded(x: float, digits: int) -> float | None:
    """For JSON: rounded, and None (null) where there is no finite value."""
    return round(float(x), digits) if x is not None and math.isfinite(x) else None
