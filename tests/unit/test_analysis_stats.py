"""Percentiles, windows and concurrency against known answers and numpy itself."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadkit.analysis import windows as W
from loadkit.analysis.stats import ecdf, grouped_percentiles, percentiles


def test_percentiles_known_values():
    v = np.arange(1, 101, dtype=float)  # 1..100
    p = percentiles(v, (50, 95, 99))
    assert p.tolist() == pytest.approx([50.5, 95.05, 99.01])
    assert np.isnan(percentiles(np.array([np.nan, np.inf]))).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.floats(-1e6, 1e6, allow_nan=False)), min_size=0, max_size=80
    )
)
def test_grouped_percentiles_equal_numpy_per_group(pairs):
    codes = np.array([c for c, _ in pairs], dtype=np.int64)
    vals = np.array([v for _, v in pairs], dtype=float)
    table, counts = grouped_percentiles(codes, vals, 5, (0, 50, 95, 100))
    for g in range(5):
        sel = vals[codes == g]
        assert counts[g] == sel.size
        if sel.size:
            assert table[g] == pytest.approx(np.percentile(sel, [0, 50, 95, 100]), rel=1e-9)
        else:
            assert np.isnan(table[g]).all()


def test_grouped_percentiles_ignore_nan_and_out_of_range_codes():
    table, counts = grouped_percentiles(
        np.array([0, 0, 0, -1, 7]), np.array([1.0, np.nan, 3.0, 100.0, 100.0]), 2, (50,)
    )
    assert counts.tolist() == [2, 0]
    assert table[0, 0] == 2.0 and np.isnan(table[1, 0])


def test_windows_counts_rates_and_percentiles():
    win = W.make_windows(0.0, 9_999.0, width_s=2.0)
    assert (win.n, win.width_s) == (5, 2.0)
    t = np.array([0, 500, 1999, 2000, 9999, np.nan, -5, 12_000], dtype=float)
    assert W.counts(win, t).tolist() == [3, 1, 0, 0, 1]
    assert W.rates(win, t).tolist() == [1.5, 0.5, 0, 0, 0.5]
    vals = np.array([10, 20, 30, 40, 50, 60, 70, 80], dtype=float)
    table, n = W.percentiles_over_time(win, t, vals, (50,))
    assert table[0, 0] == 20 and table[1, 0] == 40 and np.isnan(table[2, 0])
    assert n.tolist() == [3, 1, 0, 0, 1]
    assert W.sums(win, t, vals).tolist() == [60, 40, 0, 0, 50]
    assert win.mid_s.tolist() == [1, 3, 5, 7, 9]


def test_nice_width_gives_about_sixty_round_windows():
    assert W.nice_width_s(60) == 1
    assert W.nice_width_s(600) == 10
    assert W.nice_width_s(3600) == 60
    win = W.make_windows(0, 3_600_000)
    assert win.width_s == 60 and 60 <= win.n <= 61


def test_mean_concurrency_is_time_average_of_open_intervals():
    win = W.make_windows(0.0, 3999.0, width_s=1.0)
    # [0, 2000) and [500, 1500): window 0 holds 1 + 0.5, window 1 holds 1 + 0.5, then 0
    conc = W.mean_concurrency(win, np.array([0.0, 500.0]), np.array([2000.0, 1500.0]))
    assert conc.tolist() == pytest.approx([1.5, 1.5, 0.0, 0.0])
    # a constant 3 in flight over the whole span
    s = np.array([0.0, 0.0, 0.0])
    e = np.array([4000.0, 4000.0, 4000.0])
    assert W.mean_concurrency(win, s, e).tolist() == pytest.approx([3, 3, 3, 3])


def test_ecdf_thins_but_keeps_ends():
    x, y = ecdf(np.arange(10_000, dtype=float), max_points=100)
    assert x.size <= 100 and x[0] == 0 and x[-1] == 9999 and y[-1] == 1.0
    assert np.all(np.diff(y) > 0)
