"""Compare runs: percentile ratios with bootstrap CIs, significance tests, plain findings.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loadkit.analysis.requests import logical
from loadkit.analysis.slo import Limits
from loadkit.analysis.stats import percentiles

CONFIDENCE = 0.95
N_BOOT = 4000
ALPHA = 0.05
# A latency or cost difference smaller than this is reported as practically the same, even
# when a large run makes it statistically significant.
MIN_EFFECT = 0.10
# Metrics compared between runs: key -> (label for people, record column or derived name).
LATENCY_METRICS: tuple[tuple[str, str], ...] = (
    ("ttft_ms", "TTFT"),
    ("itl_ms", "ITL"),
    ("e2e_ms", "E2E latency"),
)
COMPARE_PCTS: tuple[float, ...] = (50.0, 95.0, 99.0)
OTHER_METRICS: dict[str, str] = {
    "error_rate": "error rate",
    "slo_miss_rate": "requests missing the SLO",
    "cost_per_ok_request": "cost per successful request",
}


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
            "value": _r(self.value, digits),
            "low": _r(self.low, digits),
            "high": _r(self.high, digits),
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


# -- one run's comparable samples ---------------------------------------------------------


@dataclass(frozen=True)
class RunSample:
    """What a comparison needs of one run, taken from its records."""

    label: str
    path: str
    latency: Mapping[str, np.ndarray]  # metric -> values of successful requests (ms)
    requests: int  # logical requests
    failed: int  # logical requests whose last attempt failed
    outcomes: Mapping[str, int]  # attempt outcome -> count
    attempts: int
    cost_req: np.ndarray  # cost of each logical request (USD), every attempt included
    ok_req: np.ndarray  # whether each logical request succeeded
    cost_total: float
    duration_s: float
    good: int | None = None  # requests that succeeded and met every per-request SLO limit
    # workload -> {"ttft_ms": values, "e2e_ms": values, "requests": count}
    by_workload: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def good_share(self) -> float:
        return self.good / self.requests if self.good is not None and self.requests else math.nan

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else math.nan

    @property
    def cost_per_ok_request(self) -> float:
        ok = self.requests - self.failed
        return self.cost_total / ok if ok else math.nan

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else math.nan


def run_sample(
    cols: Mapping[str, np.ndarray],
    label: str,
    path: str = "",
    notes: Sequence[str] = (),
    limits: Limits | None = None,
) -> RunSample:
    """Comparable samples of one run, per logical request (what the user felt).

    Latency of the requests that succeeded: TTFT and E2E from the first attempt's intended
    (else sent) time, so retries, backoff and open-loop schedule lag count; ITL is the
    final attempt's mean gap. `limits` (per-request SLO limits) make the good share: the
    requests that succeeded and met every limit.
    """
    from loadkit.analysis.slo import good_mask
    from loadkit.analysis.summary import active_span_s

    lr = logical(cols)
    ok = np.asarray(lr.ok, dtype=bool)
    latency = {
        "ttft_ms": np.asarray(lr.ttft_ms, dtype=np.float64)[ok],
        "itl_ms": np.asarray(lr.itl_mean_ms, dtype=np.float64)[ok],
        "e2e_ms": np.asarray(lr.latency_ms, dtype=np.float64)[ok],
    }
    workload = np.asarray(lr.workload).astype(str)
    by_workload = {
        str(w): {
            "ttft_ms": latency["ttft_ms"][workload[ok] == w],
            "e2e_ms": latency["e2e_ms"][workload[ok] == w],
            "requests": int(np.count_nonzero(workload == w)),
        }
        for w in np.unique(workload)
    }
    outcome = np.asarray(cols["outcome"]).astype(str)
    names, counts = np.unique(outcome, return_counts=True)
    cost = np.nan_to_num(np.asarray(cols["cost_usd"], dtype=np.float64), nan=0.0)
    good = None
    if limits is not None and limits.any:
        good = int(np.count_nonzero(good_mask(lr, limits)))
    return RunSample(
        label=label,
        path=path,
        latency=latency,
        requests=lr.n,
        failed=int(np.count_nonzero(~ok)),
        outcomes={str(k): int(v) for k, v in zip(names, counts, strict=True)},
        attempts=int(outcome.size),
        cost_req=np.nan_to_num(np.asarray(lr.cost_usd, dtype=np.float64), nan=0.0),
        ok_req=ok,
        cost_total=float(cost.sum()),
        duration_s=active_span_s(cols),
        good=good,
        by_workload=by_workload,
        notes=tuple(notes),
    )


# -- the comparison -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One compared figure of run `label` against the baseline run."""

    metric: str  # e.g. "ttft_ms.p95", "error_rate", "cost_per_ok_request"
    label: str  # the run compared with the baseline
    baseline_value: float
    value: float
    ratio: Interval  # value / baseline_value with its CI
    test: TestResult
    p_adjusted: float = math.nan
    significant: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "run": self.label,
            "baseline": _r(self.baseline_value, 9),
            "value": _r(self.value, 9),
            "delta": _r(self.value - self.baseline_value, 9),
            "ratio": self.ratio.as_dict(4),
            "test": self.test.name,
            "p_value": _r(self.test.p_value, 6),
            "p_adjusted": _r(self.p_adjusted, 6),
            "significant": self.significant,
        }


@dataclass(frozen=True)
class Comparison:
    """Every run against the first (the baseline): rows, per-run CIs and findings."""

    runs: tuple[RunSample, ...]
    rows: tuple[Row, ...]
    percentile_cis: Mapping[str, Mapping[str, Mapping[str, Interval]]]  # run -> metric -> pNN
    findings: tuple[str, ...] = field(default=())
    confidence: float = CONFIDENCE
    subset: str = ""  # e.g. "workload chat": only those records were compared
    workloads: tuple[WorkloadRow, ...] = ()

    @property
    def baseline(self) -> RunSample:
        return self.runs[0]


def compare_runs(
    runs: Sequence[RunSample],
    seed: int = 0,
    n_boot: int = N_BOOT,
    confidence: float = CONFIDENCE,
    alpha: float = ALPHA,
    subset: str = "",
) -> Comparison:
    """Compare each run with the first: latency percentiles, error rate, cost per request."""
    if len(runs) < 2:
        raise ValueError("a comparison needs at least two runs")
    rng = np.random.default_rng(seed)
    base = runs[0]
    cis: dict[str, dict[str, dict[str, Interval]]] = {}
    for run in runs:
        cis[run.label] = {
            metric: {
                f"p{p:g}": percentile_ci(run.latency[metric], p, rng, n_boot, confidence)
                for p in COMPARE_PCTS
            }
            for metric, _ in LATENCY_METRICS
        }
    rows: list[Row] = []
    for run in runs[1:]:
        for metric, _ in LATENCY_METRICS:
            a, b = base.latency[metric], run.latency[metric]
            test = mann_whitney_u(a, b)
            for p in COMPARE_PCTS:
                key = f"p{p:g}"
                ratio = percentile_ratio_ci(a, b, p, rng, n_boot, confidence)
                rows.append(
                    Row(
                        metric=f"{metric}.{key}",
                        label=run.label,
                        baseline_value=cis[base.label][metric][key].value,
                        value=cis[run.label][metric][key].value,
                        ratio=ratio,
                        test=test,
                    )
                )
        rows.append(
            Row(
                metric="error_rate",
                label=run.label,
                baseline_value=base.error_rate,
                value=run.error_rate,
                ratio=rate_ratio_ci(base.failed, base.requests, run.failed, run.requests),
                test=two_proportion_z(base.failed, base.requests, run.failed, run.requests),
            )
        )
        if base.good is not None and run.good is not None:
            # Requests that failed or missed a per-request SLO limit (the complement of
            # goodput's good requests): higher is worse, like every other row.
            bad_a, bad_b = base.requests - base.good, run.requests - run.good
            rows.append(
                Row(
                    metric="slo_miss_rate",
                    label=run.label,
                    baseline_value=1.0 - base.good_share,
                    value=1.0 - run.good_share,
                    ratio=rate_ratio_ci(bad_a, base.requests, bad_b, run.requests),
                    test=two_proportion_z(bad_a, base.requests, bad_b, run.requests),
                )
            )
        cost_ratio, cost_test = cost_ratio_ci(
            base.cost_req, base.ok_req, run.cost_req, run.ok_req, confidence
        )
        rows.append(
            Row(
                metric="cost_per_ok_request",
                label=run.label,
                baseline_value=base.cost_per_ok_request,
                value=run.cost_per_ok_request,
                ratio=cost_ratio,
                test=cost_test,
            )
        )
    rows = _adjust(rows, alpha)
    wl = tuple(workload_rows(runs, seed, n_boot))
    findings = tuple(findings_text(runs, rows, confidence, wl))
    return Comparison(tuple(runs), tuple(rows), cis, findings, confidence, subset, wl)


def _adjust(rows: list[Row], alpha: float) -> list[Row]:
    """Holm-adjust over the distinct tests (a run's latency rows of one metric share one)."""
    keys: dict[tuple[str, str, str], float] = {}
    for row in rows:
        keys.setdefault(_test_key(row), row.test.p_value)
    names = list(keys)
    adj = dict(zip(names, holm([keys[k] for k in names]), strict=True))
    out = []
    for row in rows:
        p_adj = float(adj[_test_key(row)])
        # A percentile row is called significant when the distributions differ AND its own
        # ratio CI excludes 1: the shift must show at that percentile, not only elsewhere.
        ci_excludes_one = (
            math.isfinite(row.ratio.low)
            and math.isfinite(row.ratio.high)
            and (row.ratio.low > 1.0 or row.ratio.high < 1.0)
        )
        is_latency = row.metric.split(".")[0] in dict(LATENCY_METRICS)
        sig = bool(math.isfinite(p_adj) and p_adj < alpha and (ci_excludes_one or not is_latency))
        out.append(
            Row(
                row.metric,
                row.label,
                row.baseline_value,
                row.value,
                row.ratio,
                row.test,
                p_adj,
                sig,
            )
        )
    return out


def _test_key(row: Row) -> tuple[str, str, str]:
    return (row.label, row.metric.split(".")[0], row.test.name)


@dataclass(frozen=True)
class WorkloadRow:
    """One workload's p95 in a run against the baseline: where a mix change comes from."""

    workload: str
    label: str
    requests: int
    baseline_requests: int
    share: float  # of the run's requests
    baseline_share: float
    ttft_p95: Interval  # ratio to the baseline (NaN when the baseline lacks the workload)
    e2e_p95: Interval
    ttft_p95_ms: float
    e2e_p95_ms: float
    baseline_ttft_p95_ms: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "run": self.label,
            "requests": self.requests,
            "baseline_requests": self.baseline_requests,
            "share": _r(self.share, 4),
            "baseline_share": _r(self.baseline_share, 4),
            "ttft_p95_ms": _r(self.ttft_p95_ms, 3),
            "baseline_ttft_p95_ms": _r(self.baseline_ttft_p95_ms, 3),
            "e2e_p95_ms": _r(self.e2e_p95_ms, 3),
            "ttft_p95_ratio": self.ttft_p95.as_dict(4),
            "e2e_p95_ratio": self.e2e_p95.as_dict(4),
        }


def workload_rows(
    runs: Sequence[RunSample], seed: int = 0, n_boot: int = N_BOOT
) -> list[WorkloadRow]:
    """Per workload, each run's p95 TTFT and E2E against the baseline's same workload."""
    rng = np.random.default_rng(seed + 1)
    base = runs[0]
    out = []
    for run in runs[1:]:
        for w in sorted(run.by_workload):
            mine = run.by_workload[w]
            theirs = base.by_workload.get(w)
            p95 = {
                m: float(percentiles(mine[m], (95.0,))[0]) if len(mine[m]) else math.nan
                for m in ("ttft_ms", "e2e_ms")
            }
            nan = Interval(math.nan, math.nan, math.nan)
            ratios = {
                m: percentile_ratio_ci(theirs[m], mine[m], 95.0, rng, n_boot)
                if theirs is not None
                else nan
                for m in ("ttft_ms", "e2e_ms")
            }
            out.append(
                WorkloadRow(
                    workload=w,
                    label=run.label,
                    requests=int(mine["requests"]),
                    baseline_requests=int(theirs["requests"]) if theirs else 0,
                    share=mine["requests"] / run.requests if run.requests else math.nan,
                    baseline_share=(theirs["requests"] / base.requests) if theirs else 0.0,
                    ttft_p95=ratios["ttft_ms"],
                    e2e_p95=ratios["e2e_ms"],
                    ttft_p95_ms=p95["ttft_ms"],
                    e2e_p95_ms=p95["e2e_ms"],
                    baseline_ttft_p95_ms=(
                        float(percentiles(theirs["ttft_ms"], (95.0,))[0])
                        if theirs is not None and len(theirs["ttft_ms"])
                        else math.nan
                    ),
                )
            )
    return out


def workload_findings(rows: Sequence[WorkloadRow], label: str, baseline: str) -> list[str]:
    """For one run: each shared workload whose p95 TTFT moved, and the workloads it adds."""
    mine = [r for r in rows if r.label == label]
    out = []
    # One workload, the same in both runs: the overall rows already say it all.
    alone = len(mine) == 1 and mine[0].share == 1.0 and mine[0].baseline_share == 1.0
    for r in [] if alone else mine:
        iv = r.ttft_p95
        if not (r.baseline_requests and _pos(iv.value) and _pos(iv.low) and _pos(iv.high)):
            continue
        if (iv.low > 1.0 or iv.high < 1.0) and not _negligible(iv.value):
            word = "higher" if iv.value > 1 else "lower"
            size = iv.value if iv.value > 1 else 1 / iv.value
            lo, hi = (iv.low, iv.high) if iv.value > 1 else (1 / iv.high, 1 / iv.low)
            out.append(
                f"The {r.workload} workload alone: p95 TTFT {_times(size)} {word} in {label} "
                f"({_ms(r.ttft_p95_ms)} vs {_ms(r.baseline_ttft_p95_ms)}), "
                f"95% CI {_times(lo)}-{_times(hi)}."
            )
    new = [r for r in mine if r.baseline_requests == 0 and r.requests > 0]
    if new:
        parts = [
            f"{r.workload} ({r.share:.0%} of requests"
            + (f", p95 TTFT {_ms(r.ttft_p95_ms)}" if math.isfinite(r.ttft_p95_ms) else "")
            + ")"
            for r in new
        ]
        out.append(
            f"New workloads in {label} (not in {baseline}): {', '.join(parts)}; they shift "
            f"the overall figures (compare like with like with --workload)."
        )
    return out


def regressions(cmp: Comparison, factor: float) -> list[Row]:
    """Rows that got significantly worse by more than `factor` (a CI gate).

    p95 latencies and cost per successful request: a significant ratio above `factor`;
    error rate and requests missing the SLO: a significant rise and a ratio above `factor`
    (or any significant rise from zero).
    """
    out = []
    for row in cmp.rows:
        if not row.significant:
            continue
        gate = row.metric.endswith(".p95") or row.metric in OTHER_METRICS
        if not gate or not row.value > row.baseline_value:
            continue
        r = row.ratio.value
        if (math.isfinite(r) and r > factor) or (row.baseline_value == 0 and row.value > 0):
            out.append(row)
    return out


# -- plain language -----------------------------------------------------------------------


def metric_label(metric: str) -> str:
    """'ttft_ms.p95' -> 'p95 TTFT'; 'error_rate' -> 'error rate'."""
    names = dict(LATENCY_METRICS)
    base, _, pct = metric.partition(".")
    if base in names:
        return f"{pct} {names[base]}"
    return OTHER_METRICS.get(metric, metric)


def _times(x: float) -> str:
    return f"{x:.2f}x" if x < 1.995 else f"{x:.1f}x" if x < 9.95 else f"{x:.0f}x"


def _fmt_ratio_ci(iv: Interval, confidence: float) -> str:
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return ""
    return f", {confidence:.0%} CI {_times(iv.low)}-{_times(iv.high)}"


def finding(row: Row, baseline_label: str, confidence: float) -> str:
    """One sentence: 'p95 TTFT is 4.1x higher in production than in pilot, 95% CI 3.6-4.7x'."""
    what = metric_label(row.metric)
    r = row.ratio.value
    if row.metric in ("error_rate", "slo_miss_rate"):
        a, b = 100 * row.baseline_value, 100 * row.value
        lead = (
            "The error rate is"
            if row.metric == "error_rate"
            else "The share of requests that failed or missed an SLO is"
        )
        return (
            f"{lead} {b:.2f}% in {row.label} against {a:.2f}% in {baseline_label}"
            + (f" ({_times(r)}{_fmt_ratio_ci(row.ratio, confidence)})" if math.isfinite(r) else "")
            + f"; {_p(row.p_adjusted)}."
        )
    if not math.isfinite(r):
        return f"{what}: no comparable value in {row.label} or {baseline_label}."
    direction = "higher" if r >= 1 else "lower"
    size = _times(r) if r >= 1 else _times(1 / r)
    ci = row.ratio
    if r < 1 and math.isfinite(ci.low) and math.isfinite(ci.high) and ci.low > 0:
        ci = Interval(1 / r, 1 / ci.high, 1 / ci.low)
    unit = _unit_pair(row)
    return (
        f"{_cap(what)} is {size} {direction} in {row.label} than in "
        f"{baseline_label} ({unit}){_fmt_ratio_ci(ci, confidence)}."
    )


def _cap(text: str) -> str:
    """Capitalise a sentence start, but never a percentile name ('p95 TTFT')."""
    if text[:1] == "p" and text[1:2].isdigit():
        return text
    return text[:1].upper() + text[1:]


def _unit_pair(row: Row) -> str:
    if row.metric == "cost_per_ok_request":
        return f"${row.value:.6f} vs ${row.baseline_value:.6f}"
    return f"{_ms(row.value)} vs {_ms(row.baseline_value)}"


def _ms(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms" if v >= 10 else f"{v:.1f} ms"


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def findings_text(
    runs: Sequence[RunSample],
    rows: Sequence[Row],
    confidence: float,
    workloads: Sequence[WorkloadRow] = (),
) -> list[str]:
    """Per run: one sentence per latency metric that differs (its p95 when that differs, else
    the percentile that moved most), then error rate and cost; then what did not differ."""
    base = runs[0].label
    out: list[str] = []
    for run in runs[1:]:
        mine = [r for r in rows if r.label == run.label]
        said: list[Row] = []
        no_ok = [r for r in (runs[0], run) if r.requests == r.failed]
        for r in no_ok:
            out.append(
                f"{r.label} has no successful request: latency and cost per successful "
                f"request cannot be compared."
            )
        for metric, _ in LATENCY_METRICS:
            sig = [r for r in mine if r.metric.startswith(metric + ".") and r.significant]
            head = next((r for r in sig if r.metric.endswith(".p95")), None)
            if head is None and sig:
                head = max(sig, key=lambda r: abs(math.log(r.ratio.value)))
            if head is not None:
                said.append(head)
        small = [r for r in said if _pos(r.ratio.value) and _negligible(r.ratio.value)]
        said = [r for r in said if r not in small]
        said.sort(key=lambda r: -abs(math.log(r.ratio.value)) if _pos(r.ratio.value) else 0.0)
        others = [r for r in mine if r.metric in OTHER_METRICS and r.significant]
        small += [
            r
            for r in others
            if r.metric == "cost_per_ok_request"
            and _pos(r.ratio.value)
            and _negligible(r.ratio.value)
        ]
        said += [r for r in others if r not in small]
        out += [finding(r, base, confidence) for r in said]
        out += workload_findings(workloads, run.label, base)
        att_fail = 1.0 - run.outcomes.get("ok", 0) / run.attempts if run.attempts else 0.0
        if att_fail >= 0.01 and att_fail > 2 * run.error_rate:
            out.append(
                f"In {run.label}, {att_fail:.1%} of attempts failed; retries and failover "
                f"brought that down to {run.error_rate:.2%} of requests "
                f"({run.attempts - run.requests} extra attempts)."
            )
        if small:
            names = ", ".join(dict.fromkeys(_family(r.metric) for r in small))
            out.append(
                f"{_cap(names)}: {run.label} differs from {base} by less than "
                f"{MIN_EFFECT:.0%} (statistically detectable, practically the same)."
            )
        differ = {_family(r.metric) for r in said + small}
        if no_ok:  # nothing to test on latency or cost: not "no difference" either
            differ |= {name for _, name in LATENCY_METRICS} | {_family("cost_per_ok_request")}
        quiet = [f for f in dict.fromkeys(_family(r.metric) for r in mine) if f not in differ]
        if quiet:
            out.append(
                f"No significant difference between {run.label} and {base} in: "
                f"{', '.join(quiet)} (Holm-adjusted p >= {ALPHA:g} or CI includes 1x)."
            )
        thin = [
            r
            for r in (runs[0], run)
            if 0 < min(len(v) for v in r.latency.values()) < 30 and r not in no_ok
        ]
        for r in thin:
            out.append(
                f"{r.label} has fewer than 30 successful requests: its percentile CIs are wide; "
                f"run it longer for a firmer answer."
            )
    return out


def _negligible(ratio: float) -> bool:
    return 1.0 / (1.0 + MIN_EFFECT) < ratio < 1.0 + MIN_EFFECT


def _family(metric: str) -> str:
    """'ttft_ms.p95' -> 'TTFT'; 'error_rate' -> 'error rate'."""
    base = metric.split(".")[0]
    return dict(LATENCY_METRICS).get(base) or metric_label(metric)


def _pos(x: float) -> bool:
    return math.isfinite(x) and x > 0


def comparison_json(cmp: Comparison) -> dict[str, Any]:
    """compare.json: runs, per-run percentiles with CIs, the delta table, findings."""
    return {
        "confidence": cmp.confidence,
        "baseline": cmp.baseline.label,
        "subset": cmp.subset or None,
        "method": {
            "percentile_ci": "bootstrap (order-statistic Beta draws), percentile interval",
            "latency_test": "Mann-Whitney U, two-sided, normal approximation",
            "error_rate_test": "two-proportion z-test; ratio CI by the log method",
            "cost_test": "z-test on cost per successful request (ratio estimator, delta "
            "method); ratio CI on the log scale",
            "multiple_testing": f"Holm step-down, alpha {ALPHA:g}",
        },
        "runs": [
            {
                "label": r.label,
                "path": r.path,
                "requests": r.requests,
                "failed_requests": r.failed,
                "attempts": r.attempts,
                "error_rate": _r(r.error_rate, 6),
                "good_requests": r.good,
                "good_share": _r(r.good_share, 6),
                "outcomes": dict(r.outcomes),
                "requests_per_s": _r(r.requests_per_s, 4),
                "duration_s": _r(r.duration_s, 3),
                "cost_usd_total": _r(r.cost_total, 9),
                "cost_usd_per_ok_request": _r(r.cost_per_ok_request, 10),
                "latency_ms": {
                    metric: {k: iv.as_dict(3) for k, iv in by_p.items()}
                    | {"n": int(np.isfinite(r.latency[metric]).sum())}
                    for metric, by_p in cmp.percentile_cis[r.label].items()
                },
                "notes": list(r.notes),
            }
            for r in cmp.runs
        ],
        "deltas": [row.as_dict() for row in cmp.rows],
        "workloads": [w.as_dict() for w in cmp.workloads],
        "findings": list(cmp.findings),
    }


def _r(x: float, digits: int) -> float | None:
    return round(float(x), digits) if x is not None and math.isfinite(x) else None
