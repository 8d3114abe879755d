"""Region assignment by share and the per-region split of an open-loop rate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadkit.workload.daily import DayClock, named_curve
from loadkit.workload.rates import RateCurve
from loadkit.workload.regions import (
    RegionLoad,
    assign_regions,
    region_curves,
    regional_arrivals,
    total_curve,
)


def test_shares_are_honoured():
    shares = [0.5, 0.3, 0.15, 0.05]
    idx = assign_regions(shares, 100_000, np.random.default_rng(0))
    assert idx.dtype == np.int64
    frac = np.bincount(idx, minlength=4) / idx.size
    assert frac == pytest.approx(shares, abs=0.005)


@given(st.lists(st.floats(0.01, 1.0), min_size=1, max_size=6), st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_assignment_indices_are_valid_and_reproducible(raw, seed):
    shares = np.array(raw) / np.sum(raw)
    a = assign_regions(shares, 500, np.random.default_rng(seed))
    b = assign_regions(shares, 500, np.random.default_rng(seed))
    assert np.array_equal(a, b)
    assert a.min() >= 0 and a.max() < len(shares)


def test_shares_must_sum_to_one_and_be_positive():
    with pytest.raises(ValueError, match="sum to 1"):
        assign_regions([0.5, 0.4], 10, np.random.default_rng())
    with pytest.raises(ValueError, match="> 0"):
        assign_regions([1.2, -0.2], 10, np.random.default_rng())
    with pytest.raises(ValueError, match="share"):
        RegionLoad("x", 1.4)
    with pytest.raises(ValueError, match="utc_offset_h"):
        RegionLoad("x", 0.5, 15.0)


def test_open_loop_rate_splits_by_share_without_daily_curves():
    regions = (RegionLoad("a", 0.7), RegionLoad("b", 0.3))
    base = RateCurve.constant(100.0, 100.0)
    curves = region_curves(base, regions)
    assert [c.expected_count(100) for c in curves] == pytest.approx([7000, 3000])
    t, idx = regional_arrivals(base, regions, 100.0, np.random.default_rng(1))
    assert np.bincount(idx) / t.size == pytest.approx([0.7, 0.3], abs=0.015)


def test_region_curves_sum_to_the_total_curve():
    clock = DayClock(12.0, 600.0)
    regions = (
        RegionLoad("us", 0.5, -5.0, named_curve("conversation")),
        RegionLoad("eu", 0.3, 1.0, named_curve("business-hours")),
        RegionLoad("ap", 0.2, 8.0, None),
    )
    base = RateCurve.from_phases([(300, 10, 10), (300, 10, 40)])
    per = region_curves(base, regions, clock, until_s=600.0)
    total = total_curve(base, regions, clock, until_s=600.0)
    ts = np.linspace(0, 599, 97)
    assert np.sum([c.rate(ts) for c in per], axis=0) == pytest.approx(total.rate(ts), rel=1e-9)


def test_names_must_be_unique():
    with pytest.raises(ValueError, match="unique"):
        region_curves(RateCurve.constant(1), (RegionLoad("a", 0.5), RegionLoad("a", 0.5)))
