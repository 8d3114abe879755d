"""Daily curves: normalisation, follow-the-sun shift, compression into a run."""

from __future__ import annotations

import numpy as np
import pytest

from loadkit.workload.daily import DailyCurve, DayClock, named_curve, shape_names
from loadkit.workload.rates import RateCurve, arrival_times
from loadkit.workload.regions import RegionLoad, regional_arrivals, total_curve

GRID = np.arange(0.0, 24.0, 1.0 / 120.0)


@pytest.mark.parametrize("name", shape_names())
def test_named_shapes_have_mean_one_over_the_day(name):
    c = named_curve(name)
    assert c.at_local(GRID).mean() == pytest.approx(1.0, abs=1e-3)
    assert np.all(c.at_local(GRID) >= 0)
    assert np.mean(c.hourly) == pytest.approx(1.0)


def test_published_peak_to_trough_ratios():
    # Azure 2024 week-long traces: conversation ~2-2.5x, code ~10x (see the shared data README)
    assert 2.0 <= named_curve("conversation").peak_to_trough() <= 2.5
    assert named_curve("code").peak_to_trough() == pytest.approx(10, rel=0.1)


def test_interpolation_passes_through_hour_midpoints_and_wraps():
    c = DailyCurve(tuple(float(i % 5 + 1) for i in range(24)))
    assert np.allclose(c.at_local(np.arange(24) + 0.5), c.hourly)
    assert np.allclose(c.at_local(GRID), c.at_local(GRID + 24.0))
    assert np.allclose(c.at_local(GRID), c.at_local(GRID - 48.0))


@pytest.mark.parametrize("offset", [-8.0, -5.0, 0.0, 1.0, 5.5, 9.0])
def test_peak_moves_with_the_utc_offset(offset):
    c = DailyCurve(tuple(np.exp(-0.5 * ((np.arange(24) + 0.5 - 14.5) / 2.0) ** 2) + 0.05))
    utc_peak = GRID[np.argmax(c.multiplier(GRID, offset))]
    assert (utc_peak - (14.5 - offset)) % 24.0 == pytest.approx(0.0, abs=0.02)


def test_clock_compresses_a_day_into_the_run():
    clock = DayClock(start_utc_hour=6.0, span_s=240.0)
    assert clock.utc_hour(0.0) == pytest.approx(6.0)
    assert clock.utc_hour(10.0) == pytest.approx(7.0)
    assert clock.utc_hour(180.0) == pytest.approx(0.0)
    assert clock.run_time_of_utc_hour(12.0) == pytest.approx(60.0)
    with pytest.raises(ValueError):
        DayClock(start_utc_hour=24.0)
    with pytest.raises(ValueError):
        DayClock(span_s=0)


def test_full_compressed_day_keeps_the_expected_volume():
    clock = DayClock(0.0, 1200.0)
    regions = (RegionLoad("us", 0.6, -5.0, named_curve("code")),)
    regions += (RegionLoad("eu", 0.4, 1.0, named_curve("business-hours")),)
    curve = total_curve(RateCurve.constant(20.0), regions, clock, until_s=1200.0)
    assert curve.expected_count(1200.0) == pytest.approx(20.0 * 1200.0, rel=2e-3)


def test_arrivals_peak_where_the_offsets_say():
    """Three regions with the same shape; each region's arrivals peak at local-peak - offset."""
    shape = DailyCurve(tuple(np.exp(-0.5 * ((np.arange(24) + 0.5 - 13.5) / 2.5) ** 2) + 0.05))
    offsets = {"us-east": -5.0, "eu-west": 1.0, "ap-tokyo": 9.0}
    regions = tuple(RegionLoad(k, 1 / 3, v, shape) for k, v in offsets.items())
    clock = DayClock(0.0, 2400.0)
    t, idx = regional_arrivals(
        RateCurve.constant(40.0), regions, 2400.0, np.random.default_rng(3), clock=clock
    )
    for k, off in enumerate(offsets.values()):
        hours = clock.utc_hour(t[idx == k])
        hist = np.histogram(hours, bins=24, range=(0, 24))[0]
        peak = np.argmax(np.convolve(np.tile(hist, 3), np.ones(3), "same")[24:48]) + 0.5
        assert (peak - (13.5 - off) + 12) % 24 - 12 == pytest.approx(0, abs=1.01), (k, peak)


def test_daily_modulated_arrivals_follow_the_curve():
    clock = DayClock(0.0, 2400.0)
    c = named_curve("code")
    curve = RateCurve.constant(30.0).multiply(
        lambda t: c.multiplier(clock.utc_hour(t), 0.0), clock.step_s(), until_s=2400.0
    )
    t = arrival_times(curve, 2400.0, "poisson", 1.0, np.random.default_rng(4))
    hist = np.histogram(clock.utc_hour(t), bins=24, range=(0, 24))[0] / 100.0
    rel = hist / hist.mean()
    assert rel[np.argmax(c.hourly)] > 1.5 and rel[2] < 0.4
    assert t.size == pytest.approx(30.0 * 2400.0, rel=0.03)
