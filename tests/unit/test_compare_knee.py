"""Knee detection on synthetic load curves with a known knee."""

from __future__ import annotations

import numpy as np

from loadkit.analysis.knee import find_knee, saturation, slo_limit


def test_saturating_throughput_knee_at_capacity() -> None:
    loads = np.array([1, 2, 4, 8, 16, 32, 64], dtype=float)
    for cap in (4.0, 8.0, 16.0):
        thr = np.minimum(loads, cap) * 3.0
        k = find_knee(loads, thr, "concave", log_load=True)
        assert k is not None and k.load == cap
        assert saturation(loads, thr) == cap * 2  # the first step that added nothing


def test_noisy_throughput_knee() -> None:
    rng = np.random.default_rng(0)
    loads = np.linspace(10, 200, 20)
    thr = 100 * (1 - np.exp(-loads / 40)) + rng.normal(0, 1.0, loads.size)
    k = find_knee(loads, thr, "concave")
    # the Kneedle knee of 1 - exp(-x/40) on [10, 200] is near x = 40 * ln(190/40) ~ 62
    assert k is not None and 45 <= k.load <= 85


def test_latency_hockey_stick_knee() -> None:
    loads = np.array([1, 2, 4, 8, 16, 32], dtype=float)
    # flat at 100 ms up to 8 users, then queueing doubles it with each doubling
    p95 = np.where(loads <= 8, 100.0, 100.0 * loads / 8.0)
    k = find_knee(loads, p95, "convex", log_load=True)
    assert k is not None and k.load == 8


def test_straight_line_has_no_knee() -> None:
    loads = np.arange(1, 10, dtype=float)
    assert find_knee(loads, 2 * loads + 1, "concave") is None
    assert find_knee(loads, 2 * loads + 1, "convex") is None
    assert find_knee(loads[:2], loads[:2], "concave") is None
    assert saturation(loads, 3 * loads) is None


def test_small_wiggles_are_not_a_knee() -> None:
    loads = np.array([32, 128, 256], dtype=float)
    p95 = np.array([222.0, 228.0, 265.0])  # measured on a service far from saturation
    assert find_knee(loads, p95, "convex", log_load=True) is not None  # Kneedle alone
    assert find_knee(loads, p95, "convex", log_load=True, min_rise=0.5) is None
    p95[-1] = 700.0
    assert find_knee(loads, p95, "convex", log_load=True, min_rise=0.5).load == 128


def test_slo_limit() -> None:
    loads = np.array([8, 4, 16, 32], dtype=float)  # any order
    assert slo_limit(loads, np.array([True, True, False, True])) == 8
    assert slo_limit(loads, np.array([True, False, True, True])) is None
    assert slo_limit(loads, np.array([True, True, True, True])) == 32
