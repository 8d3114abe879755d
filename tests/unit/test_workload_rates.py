"""Rate curves and open-loop arrivals by time rescaling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from loadkit.workload.rates import RateCurve, arrival_times


def _cv(t: np.ndarray) -> float:
    g = np.diff(t)
    return float(g.std() / g.mean())


@pytest.mark.parametrize(
    ("process", "cv"),
    [("poisson", 1.0), ("gamma", 0.5), ("gamma", 3.0), ("gamma", 1.09), ("constant", 0.0)],
)
def test_arrivals_have_configured_mean_rate_and_cv(process, cv):
    rate, duration = 200.0, 500.0  # ~100,000 arrivals
    t = arrival_times(RateCurve.constant(rate), duration, process, cv, np.random.default_rng(5))
    assert np.all(np.diff(t) >= 0) and t[0] >= 0 and t[-1] < duration
    assert t.size / duration == pytest.approx(rate, rel=0.05 if cv <= 1 else 0.1)
    if cv == 0:
        assert _cv(t) < 1e-6
    else:
        assert _cv(t) == pytest.approx(cv, rel=0.05)


def test_phases_step_and_ramp_counts():
    c = RateCurve.from_phases([(100, 10, 10), (100, 10, 50), (100, 5, 5)])
    assert c.expected_count(100) == pytest.approx(1000)
    assert c.expected_count(200) == pytest.approx(1000 + 3000)
    assert c.expected_count(300) == pytest.approx(4500)
    assert c.expected_count(400) == pytest.approx(5000)  # last rate holds
    assert c.rate(150) == pytest.approx(30)
    assert c.rate(200) == pytest.approx(5)  # right-continuous at the step
    t = arrival_times(c, 300, "poisson", 1.0, np.random.default_rng(0))
    counts = np.histogram(t, bins=[0, 100, 200, 300])[0]
    assert counts == pytest.approx([1000, 3000, 500], rel=0.1)
    # inside the ramp, the second half carries more than the first: 10->30 vs 30->50
    ramp = np.histogram(t, bins=[100, 150, 200])[0]
    assert ramp[1] / ramp[0] == pytest.approx(2000 / 1000, rel=0.15)


def test_zero_rate_phase_has_no_arrivals():
    c = RateCurve.from_phases([(10, 20, 20), (10, 0, 0), (10, 20, 20)])
    t = arrival_times(c, 30, "poisson", 1.0, np.random.default_rng(1))
    assert not np.any((t > 10) & (t < 20))
    assert np.any(t > 20)


def test_same_seed_same_arrivals():
    c = RateCurve.from_phases([(60, 1, 30)])
    a = arrival_times(c, 60, "gamma", 2.0, np.random.default_rng(9))
    b = arrival_times(c, 60, "gamma", 2.0, np.random.default_rng(9))
    assert np.array_equal(a, b)


@given(
    rates=st.lists(st.floats(0.0, 100.0), min_size=2, max_size=8),
    durs=st.lists(st.floats(0.1, 50.0), min_size=7, max_size=7),
    frac=st.floats(0.0, 1.0),
)
# Found by hypothesis: u ~ 5e-292 on a ramp up from rate 0 made r^2 + 2*s*d underflow to 0,
# the inverse inf and the round trip NaN.
@example(rates=[0.0, 1e-40], durs=[0.1] * 7, frac=1e-250)
@example(rates=[0.0, 1e-30], durs=[0.1] * 7, frac=2e-269)
@settings(max_examples=80, deadline=None)
def test_inverse_cumulative_round_trips(rates, durs, frac):
    times = np.concatenate(([0.0], np.cumsum(durs[: len(rates) - 1])))
    c = RateCurve(tuple(times), tuple(rates))
    total = c.expected_count(c.end_s)
    if total <= 0:
        return
    u = np.array([frac * total])
    t = c.inverse_cumulative(u)
    assert c.cumulative(t)[0] == pytest.approx(u[0], rel=1e-7, abs=1e-7)


def test_validation():
    with pytest.raises(ValueError, match="start at 0"):
        RateCurve((1.0, 2.0), (1.0, 1.0))
    with pytest.raises(ValueError, match="non-decreasing"):
        RateCurve((0.0, 2.0, 1.0), (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match=">= 0"):
        RateCurve((0.0, 1.0), (1.0, -1.0))
    with pytest.raises(ValueError, match="process"):
        arrival_times(RateCurve.constant(1), 10, "weibull", 1.0, np.random.default_rng())
    with pytest.raises(ValueError, match="cv"):
        arrival_times(RateCurve.constant(1), 10, "gamma", 0.0, np.random.default_rng())


def test_multiply_by_a_factor_keeps_steps():
    c = RateCurve.from_phases([(10, 5, 5), (10, 1, 1)])
    m = c.multiply(lambda t: np.full_like(t, 2.0), step_s=1.0)
    assert m.expected_count(20) == pytest.approx(2 * c.expected_count(20))
    assert m.rate(5) == pytest.approx(10) and m.rate(15) == pytest.approx(2)
