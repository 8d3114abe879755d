"""Comparison statistics on distributions with known answers."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from loadkit.analysis import compare as cmp


def _lognormal_pct(mu: float, sigma: float, pct: float) -> float:
    """The true percentile of a lognormal (numpy's normal quantile via a sorted big sample
    would be noisy; use the inverse error function by bisection instead)."""
    z = _norm_ppf(pct / 100.0)
    return math.exp(mu + sigma * z)


def _norm_ppf(q: float) -> float:
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def test_order_statistic_bootstrap_matches_resampling() -> None:
    """The Beta shortcut has the distribution of resample-and-take-the-percentile."""
    rng = np.random.default_rng(3)
    x = np.sort(rng.lognormal(5.0, 1.0, size=300))
    fast = cmp.bootstrap_percentile(x, 95, 20000, np.random.default_rng(4))
    slow_rng = np.random.default_rng(5)
    idx = slow_rng.integers(0, x.size, size=(4000, x.size))
    slow = np.percentile(x[idx], 95, axis=1)
    # Two-sample Kolmogorov-Smirnov distance; the 1% critical value for 4000 vs 20000
    # draws is 1.63 * sqrt(1/4000 + 1/20000) = 0.028.
    grid = np.sort(np.concatenate([fast, slow]))
    f_cdf = np.searchsorted(np.sort(fast), grid, side="right") / fast.size
    s_cdf = np.searchsorted(np.sort(slow), grid, side="right") / slow.size
    assert np.abs(f_cdf - s_cdf).max() < 0.028
    assert abs(np.median(fast) - np.median(slow)) / np.median(slow) < 0.01
    # and not the trivial answer: the draws vary
    assert np.std(fast) > 0.02 * np.mean(fast)


def test_bootstrap_handles_small_and_exact_samples() -> None:
    rng = np.random.default_rng(0)
    assert np.all(cmp.bootstrap_percentile(np.array([7.0]), 95, 10, rng) == 7.0)
    draws = cmp.bootstrap_percentile(np.array([1.0, 2.0]), 50, 5000, rng)
    # resamples of {1, 2}: median 1 (1/4), 1.5 (1/2), 2 (1/4)
    assert set(np.unique(draws)) == {1.0, 1.5, 2.0}
    assert abs(np.mean(draws == 1.5) - 0.5) < 0.03
    assert math.isnan(cmp.percentile_ci(np.array([np.nan]), 95, rng).value)


def test_ratio_ci_covers_the_true_ratio() -> None:
    """Over many experiments, the 95% CI of p95(B)/p95(A) holds the true ratio ~95% of runs."""
    mu_a, mu_b, sigma = 5.0, 5.0 + math.log(4.0), 0.8
    true = _lognormal_pct(mu_b, sigma, 95) / _lognormal_pct(mu_a, sigma, 95)
    assert abs(true - 4.0) < 1e-9
    rng = np.random.default_rng(11)
    trials, hits, widths = 300, 0, []
    for _ in range(trials):
        a = rng.lognormal(mu_a, sigma, size=400)
        b = rng.lognormal(mu_b, sigma, size=600)
        iv = cmp.percentile_ratio_ci(a, b, 95, rng, n_boot=1000)
        hits += iv.low <= true <= iv.high
        widths.append(iv.high - iv.low)
    coverage = hits / trials
    # binomial sd at 300 trials is 1.3 points; the percentile bootstrap of a tail
    # quantile under-covers slightly at these sizes
    assert 0.88 <= coverage <= 0.99, coverage
    assert 0.5 < np.median(widths) < 3.0


def test_mann_whitney_matches_brute_force_and_detects_shift() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, 40).round(1)  # rounding makes ties
    b = rng.normal(0.8, 1, 50).round(1)
    res = cmp.mann_whitney_u(a, b)
    brute = sum((y > x) + 0.5 * (y == x) for x, y in itertools.product(a, b))
    assert res.statistic == pytest.approx(brute)
    assert res.effect == pytest.approx(brute / (a.size * b.size))
    assert res.p_value < 0.01
    same = cmp.mann_whitney_u(a, a.copy())
    assert same.p_value > 0.9 and same.effect == pytest.approx(0.5)


def test_mann_whitney_exact_small_case() -> None:
    """a = {1, 2, 3}, b = {4, 5, 6}: U = 9, z = (|9 - 4.5| - 0.5) / sqrt(5.25)."""
    res = cmp.mann_whitney_u(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]))
    z = 4.0 / math.sqrt(3 * 3 * 7 / 12)
    assert res.statistic == 9
    assert res.p_value == pytest.approx(math.erfc(z / math.sqrt(2)))


def test_mann_whitney_false_positive_rate_is_near_alpha() -> None:
    rng = np.random.default_rng(8)
    rejections = sum(
        cmp.mann_whitney_u(rng.lognormal(0, 1, 60), rng.lognormal(0, 1, 80)).p_value < 0.05
        for _ in range(400)
    )
    assert 0.02 <= rejections / 400 <= 0.09


def test_two_proportion_and_rate_ratio() -> None:
    res = cmp.two_proportion_z(10, 1000, 40, 1000)
    assert res.p_value < 1e-4 and res.effect == pytest.approx(0.03)
    iv = cmp.rate_ratio_ci(10, 1000, 40, 1000)
    assert iv.value == pytest.approx(4.0) and iv.low < 4.0 < iv.high and iv.low > 1.5
    assert cmp.two_proportion_z(0, 100, 0, 100).p_value == 1.0
    assert math.isnan(cmp.rate_ratio_ci(0, 100, 0, 100).value)


def test_holm_adjustment() -> None:
    adj = cmp.holm([0.01, 0.04, 0.03, float("nan")])
    assert adj[0] == pytest.approx(0.03)
    assert adj[2] == pytest.approx(0.06)
    assert adj[1] == pytest.approx(0.06)  # monotone: never below an earlier step
    assert math.isnan(adj[3])


def _cols(ttft: np.ndarray, outcome: np.ndarray, cost: float) -> dict[str, np.ndarray]:
    n = ttft.size
    return {
        "request_id": np.array([f"r{i}" for i in range(n)], dtype=object),
        "attempt": np.ones(n, dtype=np.int64),
        "t_sent": np.arange(n) * 100.0,
        "t_intended": np.full(n, np.nan),
        "ttft_ms": ttft,
        "itl_mean_ms": np.full(n, 20.0),
        "e2e_ms": ttft + 1000.0,
        "outcome": outcome,
        "cost_usd": np.full(n, cost),
        "region": np.array(["na"] * n, dtype=object),
        "workload": np.array(["chat"] * n, dtype=object),
        "fault": np.array([""] * n, dtype=object),
    }


def test_compare_runs_findings_on_known_shift() -> None:
    rng = np.random.default_rng(1)
    n = 2000
    a = _cols(rng.lognormal(np.log(300), 0.4, n), np.array(["ok"] * n, dtype=object), 0.001)
    out_b = np.array(["ok"] * n, dtype=object)
    out_b[:100] = "http_error"  # 5% failed vs 0%
    b = _cols(rng.lognormal(np.log(1200), 0.4, n), out_b, 0.001)
    res = cmp.compare_runs([cmp.run_sample(a, "pilot"), cmp.run_sample(b, "production")])
    rows = {r.metric: r for r in res.rows}
    p95 = rows["ttft_ms.p95"]
    assert p95.significant and p95.ratio.low < 4.0 < p95.ratio.high
    assert not rows["itl_ms.p95"].significant  # identical ITL
    assert rows["error_rate"].significant
    text = " ".join(res.findings)
    assert re.search(r"p95 TTFT is (3\.[89]|4\.[01])x higher in production than in pilot", text)
    assert "95% CI" in text
    assert "ITL" in text and "No significant difference" in text
    doc = cmp.comparison_json(res)
    assert doc["baseline"] == "pilot" and len(doc["runs"]) == 2
    assert doc["runs"][1]["failed_requests"] == 100
    cost = rows["cost_per_ok_request"]  # same cost per attempt, 5% failed: 1/0.95 per success
    assert cost.ratio.value == pytest.approx(1 / 0.95)
    assert cost.ratio.low <= 1 / 0.95 <= cost.ratio.high


def test_compare_needs_two_runs() -> None:
    rng = np.random.default_rng(1)
    a = _cols(rng.lognormal(5, 1, 10), np.array(["ok"] * 10, dtype=object), 0.0)
    with pytest.raises(ValueError):
        cmp.compare_runs([cmp.run_sample(a, "only")])


def test_retries_that_saved_requests_are_a_finding() -> None:
    rng = np.random.default_rng(5)
    n = 500
    a = _cols(rng.lognormal(5, 0.3, n), np.array(["ok"] * n, dtype=object), 0.001)
    b = _cols(rng.lognormal(5, 0.3, n), np.array(["ok"] * n, dtype=object), 0.001)
    # 100 of b's requests failed once with a 503, then succeeded on the retry
    retry = {k: np.concatenate([v, v[:100]]) for k, v in b.items()}
    retry["attempt"][:100] = 0
    retry["outcome"][:100] = "http_error"
    retry["ttft_ms"][:100] = np.nan
    sample = cmp.run_sample(retry, "drill")
    assert sample.requests == n and sample.failed == 0 and sample.attempts == n + 100
    res = cmp.compare_runs([cmp.run_sample(a, "base"), sample])
    text = " ".join(res.findings)
    assert "In drill, 16.7% of attempts failed; retries and failover brought that down" in text
    assert "0.00% of requests (100 extra attempts)" in text
