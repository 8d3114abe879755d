"""Token-count distributions: percentiles, means, validation, whole counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadkit.workload.distributions import (
    Constant,
    Empirical,
    LogNormal,
    Normal,
    Uniform,
    sample_counts,
)

N = 100_000
QS = (0.1, 0.5, 0.9, 0.99)


@pytest.mark.parametrize(
    "dist",
    [
        Uniform(100, 900),
        Normal(mean=500, std=80),
        LogNormal(median=1020, p90=2735),  # Azure conv 2023 input tokens
        LogNormal(median=13, p90=55),  # Azure code 2023 output tokens
        Empirical.from_values(np.arange(1, 2001) ** 1.5),
    ],
    ids=repr,
)
def test_sampled_percentiles_match_configured_within_5_percent(dist):
    x = dist.sample(np.random.default_rng(7), N)
    assert x.dtype == np.float64 and x.shape == (N,)
    for q in QS:
        want = dist.quantile(q)
        got = float(np.quantile(x, q))
        assert abs(got - want) <= 0.05 * abs(want), (q, got, want)
    assert abs(x.mean() - dist.mean()) <= 0.05 * dist.mean()


def test_lognormal_is_defined_by_median_and_p90():
    d = LogNormal(median=129, p90=424)
    assert d.quantile(0.5) == pytest.approx(129)
    assert d.quantile(0.9) == pytest.approx(424)
    assert d.mean() > d.quantile(0.5)  # right-skewed


@given(
    median=st.floats(1.0, 1e5),
    ratio=st.floats(1.01, 50.0),
)
@settings(max_examples=60, deadline=None)
def test_lognormal_quantiles_round_trip(median, ratio):
    d = LogNormal(median=median, p90=median * ratio)
    assert d.quantile(0.5) == pytest.approx(median, rel=1e-9)
    assert d.quantile(0.9) == pytest.approx(median * ratio, rel=1e-9)


def test_constant_and_uniform():
    rng = np.random.default_rng(1)
    assert np.all(Constant(42).sample(rng, 10) == 42)
    assert Constant(42).quantile(0.99) == 42 and Constant(42).mean() == 42
    u = Uniform(2, 4).sample(rng, 1000)
    assert u.min() >= 2 and u.max() <= 4


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: LogNormal(median=100, p90=50), "p90 must exceed median"),
        (lambda: LogNormal(median=0, p90=50), "median must be > 0"),
        (lambda: Uniform(5, 1), "high must be >= low"),
        (lambda: Normal(mean=1, std=-1), "std must be >= 0"),
        (lambda: Constant(float("nan")), "must be finite"),
        (lambda: Constant("abc"), "expected a number"),
        (lambda: Empirical(()), "at least one value"),
    ],
)
def test_bad_parameters_raise_plain_value_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_sample_counts_rounds_and_clips():
    rng = np.random.default_rng(3)
    c = sample_counts(Normal(mean=2, std=5), rng, 10_000, low=1, high=6)
    assert c.dtype == np.int64
    assert c.min() == 1 and c.max() == 6
    assert set(np.unique(c)) == {1, 2, 3, 4, 5, 6}
    assert np.all(sample_counts(Constant(2.6), rng, 5) == 3)
    with pytest.raises(ValueError):
        sample_counts(Constant(1), rng, 5, low=3, high=2)


def test_same_seed_same_draws():
    d = LogNormal(300, 900)
    a = d.sample(np.random.default_rng(11), 1000)
    b = d.sample(np.random.default_rng(11), 1000)
    c = d.sample(np.random.default_rng(12), 1000)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_empirical_draws_only_observed_values_and_is_hashable():
    e = Empirical.from_values([3, 1, 2, 2])
    x = e.sample(np.random.default_rng(0), 1000)
    assert set(np.unique(x)) <= {1.0, 2.0, 3.0}
    assert e.quantile(0.5) == 2.0 and e.mean() == 2.0
    assert hash(e) == hash(Empirical((3.0, 1.0, 2.0, 2.0)))
    assert "n=4" in repr(e)


def test_empirical_from_trace_column(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n"
    )
    assert Empirical.from_trace(p, "input_tokens").values == (374.0, 396.0)
    assert Empirical.from_trace(p, "output_tokens").values == (44.0, 109.0)
    with pytest.raises(ValueError, match="column"):
        Empirical.from_trace(p, "bogus")
