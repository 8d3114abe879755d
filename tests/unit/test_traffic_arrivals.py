"""The fate of every planned arrival: tallies add up across processes, schedule.json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from loadkit.traffic.arrivals import Tally, phases_of, planned_histogram, write_schedule


def test_tallies_add_up_and_the_cap_is_the_longest_wait() -> None:
    total = Tally()
    total.add(Tally(fired=10, not_sent=3, skipped={"stopped": 5}, cap_full_s=2.0))
    total.add({"fired": 7, "not_sent": 1, "skipped": {"stopped": 2, "x": 1}, "cap_full_s": 3.5})
    assert (total.fired, total.not_sent) == (17, 4)
    assert total.skipped == {"stopped": 7, "x": 1}
    assert math.isclose(total.cap_full_s, 3.5)
    assert Tally.from_json(total.to_json()) == total


def test_planned_histogram_counts_every_arrival_once() -> None:
    t = np.array([0.0, 0.2, 0.99, 1.0, 2.5, 14.999])
    width, hist = planned_histogram(t, 15.0)
    assert width == 1.0 and sum(hist) == t.size
    assert hist[:3] == [3, 1, 1] and hist[14] == 1


def _scenario(phases: list[tuple[float, float, float]], daily: object = None) -> SimpleNamespace:
    load = SimpleNamespace(
        phases=[SimpleNamespace(duration_s=d, rate_start=a, rate_end=b) for d, a, b in phases],
        daily=daily,
        max_in_flight=4,
    )
    return SimpleNamespace(load=load, duration_s=sum(d for d, _, _ in phases))


def test_phases_on_the_run_clock_with_their_planned_counts() -> None:
    sc = _scenario([(10.0, 2.0, 2.0), (10.0, 2.0, 8.0)])
    t = np.array([0.5, 4.0, 9.99, 10.0, 19.0, 10.0])  # compressed by half: phases of 5 s
    got = phases_of(sc, 0.5, np.sort(t) / 2.0)
    assert [p["name"] for p in got] == ["phase 1 (2/s)", "phase 2 (2/s to 8/s)"]
    assert [(p["t0_s"], p["t1_s"]) for p in got] == [(0.0, 5.0), (5.0, 10.0)]
    assert [p["planned"] for p in got] == [3, 3]
    # a daily curve (or a trace): equal windows instead
    daily = phases_of(_scenario([(20.0, 1.0, 1.0)], daily=object()), 1.0, t)
    assert len(daily) == 10 and sum(p["planned"] for p in daily) == t.size


def test_schedule_json_names_a_workers_stop_by_the_runs_reason(tmp_path: Path) -> None:
    sc = _scenario([(3.0, 2.0, 2.0)])
    plan = SimpleNamespace(t_s=np.arange(6) * 0.5)
    path = tmp_path / "schedule.json"
    tally = Tally(fired=2, not_sent=1, skipped={"stopped": 3})
    write_schedule(path, plan, sc, 1.0, 3.0, tally, 2, "interrupted")
    doc = json.loads(path.read_text())
    assert doc["planned"] == 6 and doc["skipped"] == {"interrupted": 3}
    assert doc["fired"] + doc["not_sent"] + sum(doc["skipped"].values()) == doc["planned"]
    assert doc["max_in_flight"] == 4 and doc["processes"] == 2
    assert sum(doc["planned_per_bin"]) == 6
