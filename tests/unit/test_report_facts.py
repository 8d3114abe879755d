"""The scenario facts behind the monthly projection: peak users, daily-curve peak, budget."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from loadkit.report.facts import _daily_peak_factor, _mean_users, planned_rates
from loadkit.scenario import load_scenario
from tests.run_helpers import REPO


def _phase(kind, users, s):
    return SimpleNamespace(kind=kind, users=users, duration_s=s)


def test_mean_and_peak_users_of_closed_loop_phases():
    # ramp 0 -> 10 over 10 s (mean 5), hold 10 for 30 s: (50 + 300) / 40
    avg, top = _mean_users([_phase("ramp", 10, 10), _phase("hold", 10, 30)])
    assert (avg, top) == (pytest.approx(350 / 40), 10)
    # a spike counts at its height for its duration, then the level goes back
    avg, top = _mean_users(
        [_phase("hold", 10, 10), _phase("spike", 30, 10), _phase("hold", 10, 20)]
    )
    assert (avg, top) == (pytest.approx((100 + 300 + 200) / 40), 30)


def test_daily_peak_factor_combines_regions_at_their_offsets():
    hourly = [1.0] * 24
    hourly[12] = 3.0  # one busy hour at local noon
    one = SimpleNamespace(
        load=SimpleNamespace(daily=SimpleNamespace(hourly=tuple(hourly))),
        regions=[SimpleNamespace(share=1.0, utc_offset_h=0.0)],
    )
    assert _daily_peak_factor(one) == pytest.approx(3.0 / (26 / 24))
    two = SimpleNamespace(
        load=one.load,
        regions=[
            SimpleNamespace(share=0.5, utc_offset_h=0.0),
            SimpleNamespace(share=0.5, utc_offset_h=6.0),  # its noon is 6 h earlier in UTC
        ],
    )
    assert _daily_peak_factor(two) == pytest.approx(2.0 / (26 / 24))  # the peaks no longer meet
    assert _daily_peak_factor(SimpleNamespace(load=SimpleNamespace(daily=None))) == 1.0


def test_shipped_scenarios_have_a_peak_at_least_their_mean():
    for name in ("quickstart", "pilot", "production", "capacity"):
        peak, mean, cost = planned_rates(load_scenario(REPO / "scenarios" / f"{name}.yaml"))
        assert peak >= mean > 0 and cost > 0, name
