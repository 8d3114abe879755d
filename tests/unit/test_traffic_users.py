"""Region picking for closed-loop users (the users themselves run in tests/integration)."""

from __future__ import annotations

from loadkit.traffic.assign import RegionPicker, int_weights


def test_region_picker_follows_shares_deterministically():
    picker = RegionPicker(["eu", "us", "ap"], [0.5, 0.3, 0.2])
    picks = [picker.next() for _ in range(100)]
    assert picks.count("eu") == 50 and picks.count("us") == 30 and picks.count("ap") == 20
    assert picks[:4] == ["eu", "us", "ap", "eu"]
    assert int_weights([3.0, 1.0]) == [750, 250]
