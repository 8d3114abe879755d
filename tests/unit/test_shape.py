"""Closed-loop phases -> Locust ticks, and `--duration` compression keeping the shape."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from loadkit.traffic.shape import (
    compress_times,
    tick_at,
    time_scale,
    user_profile,
    users_factor_for,
)


@dataclass(frozen=True)
class Phase:
    kind: str
    duration_s: float
    users: int


@dataclass(frozen=True)
class Window:
    id: str
    at_s: float
    for_s: float | None


PHASES = (
    Phase("ramp", 60, 10),
    Phase("hold", 120, 10),
    Phase("spike", 30, 40),
    Phase("hold", 60, 10),
    Phase("ramp", 30, 0),
)


def test_profile_follows_phases() -> None:
    prof = user_profile(PHASES, spawn_rate=None)
    assert prof.duration_s == 300
    assert prof.peak_users == 40
    assert tick_at(prof, 0)[0] <= 1
    users_mid_ramp, rate = tick_at(prof, 30)
    assert 5 <= users_mid_ramp <= 6  # 5 on the curve, one tick ahead at most
    assert rate == pytest.approx(1.0)  # 10 users / 60 s, floored at 1 user/s
    assert tick_at(prof, 100) == (10, 10.0)
    assert tick_at(prof, 200)[0] == 40  # the spike
    assert tick_at(prof, 240)[0] == 10  # back to the level before the spike
    assert tick_at(prof, 299)[0] <= 1  # ramp down to zero
    assert tick_at(prof, 300) is None


def test_spawn_rate_from_scenario_applies_to_jumps() -> None:
    prof = user_profile((Phase("step", 10, 50),), spawn_rate=5)
    assert tick_at(prof, 1) == (50, 5.0)


@pytest.mark.parametrize("duration", [30.0, 60.0, 150.0])
def test_compression_keeps_shape(duration: float) -> None:
    full = user_profile(PHASES, None)
    k = time_scale(full.duration_s, duration)
    short = user_profile(PHASES, None, scale=k)
    assert short.duration_s == pytest.approx(duration)
    for frac in (0.05, 0.3, 0.5, 0.62, 0.7, 0.8, 0.95):
        a = tick_at(full, frac * full.duration_s)[0]
        b = tick_at(short, frac * short.duration_s)[0]
        # Ramps are asked one tick ahead: in a shorter run that tick is a larger fraction.
        assert abs(a - b) <= 2, (frac, a, b)
    # Segment boundaries move by exactly the same factor.
    for s_full, s_short in zip(full.segments, short.segments, strict=True):
        assert s_short.t_start_s == pytest.approx(s_full.t_start_s * k)
        assert s_short.t_end_s == pytest.approx(s_full.t_end_s * k)


def test_fault_windows_compress_with_the_timeline() -> None:
    k = time_scale(7200, 60)
    faults = (Window("outage", 1800, 600), Window("storm", 3600, None))
    short = compress_times(faults, k, ("at_s", "for_s"))
    assert short[0].at_s == pytest.approx(15) and short[0].for_s == pytest.approx(5)
    assert short[1].at_s == pytest.approx(30) and short[1].for_s is None
    assert short[0].id == "outage"


def test_users_override_scales_the_peak() -> None:
    f = users_factor_for(40, 4)
    prof = user_profile(PHASES, None, users_factor=f)
    assert prof.peak_users == 4
    assert tick_at(prof, 100)[0] == 1  # 10 * 0.1
    with pytest.raises(ValueError):
        users_factor_for(40, 0)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        time_scale(100, 0)
    with pytest.raises(ValueError):
        user_profile((Phase("wiggle", 1, 1),), None)
    assert time_scale(100, None) == 1.0
