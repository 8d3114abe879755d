"""Who fires which open-loop arrival in a distributed run, and the master's worker book.

Pure parts of `loadkit.traffic.distributed` and `loadkit.orchestration.run_distributed`
(no Locust, no processes): every arrival goes to exactly one worker, before and after a
re-split; region
workers get only their region; the worker book and the lines under the summary table. Plus
`OpenLoopScheduler.cut`, which hands a schedule's tail to the next split.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadkit.orchestration.run_distributed import worker_lines
from loadkit.traffic.distributed import (
    WorkerBook,
    select_arrivals,
    split_regions,
)
from loadkit.traffic.openloop import OpenLoopScheduler

REGIONS = ("eu", "us", "ap")


def _plan(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 60, n))
    region = rng.choice(len(REGIONS), size=n, p=[0.3, 0.5, 0.2]).astype(np.int64)
    return t, region


def _fired(workers: dict[str, str | None], t, region, from_s: float = 0.0) -> dict[str, set]:
    split, _ = split_regions(workers, list(REGIONS))
    return {
        w: set(select_arrivals(t, region, REGIONS, serves, from_s)[1].tolist())
        for w, serves in split.items()
    }


def test_general_workers_share_every_region_evenly() -> None:
    t, region = _plan(3000)
    got = _fired({"w0": None, "w1": None, "w2": None}, t, region)
    union = set().union(*got.values())
    assert union == set(range(t.size))
    assert sum(len(v) for v in got.values()) == t.size  # each arrival once
    for i in range(len(REGIONS)):  # each region split within one arrival
        counts = [int(np.sum(region[list(v)] == i)) for v in got.values()]
        assert max(counts) - min(counts) <= 1


def test_region_workers_get_only_their_region_and_general_ones_the_rest() -> None:
    t, region = _plan(2000)
    workers = {"w0": "eu", "w1": "us", "w2": "us", "w3": None}
    split, unserved = split_regions(workers, list(REGIONS))
    assert unserved == []
    assert split["w0"] == {"eu": (0, 1)}
    assert split["w1"] == {"us": (0, 2)} and split["w2"] == {"us": (1, 2)}
    assert split["w3"] == {"ap": (0, 1)}  # the region without a worker of its own
    got = _fired(workers, t, region)
    for w, want in (("w0", {0}), ("w1", {1}), ("w2", {1}), ("w3", {2})):
        assert set(region[list(got[w])].tolist()) == want
    assert sum(len(v) for v in got.values()) == t.size


def test_a_region_nobody_serves_is_reported() -> None:
    split, unserved = split_regions({"w0": "eu"}, list(REGIONS))
    assert unserved == ["us", "ap"] and split == {"w0": {"eu": (0, 1)}}
    assert split_regions({}, list(REGIONS)) == ({}, list(REGIONS))


def test_workers_are_ordered_by_number_not_text() -> None:
    split, _ = split_regions({"w10": None, "w2": None, "w1": None}, ["eu"])
    assert [split[w]["eu"][0] for w in ("w1", "w2", "w10")] == [0, 1, 2]


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 400),
    before=st.integers(1, 4),
    after=st.integers(1, 4),
    switch=st.floats(0, 60),
    seed=st.integers(0, 1000),
)
def test_a_resplit_hands_over_without_gap_or_double(n, before, after, switch, seed) -> None:
    """Old split up to `switch`, new split from it: every arrival exactly once."""
    t, region = _plan(n, seed)
    old = _fired({f"w{i}": None for i in range(before)}, t, region)
    new = _fired({f"w{i}": None for i in range(after)}, t, region, from_s=switch)
    fired = [i for v in old.values() for i in v if t[i] < switch]
    fired += [i for v in new.values() for i in v]
    assert sorted(fired) == list(range(n))


def test_worker_book_and_summary_lines() -> None:
    book = WorkerBook()
    book.join("c0", "w0", None, 0.0)
    e1 = book.join("c1", "w1", "eu", 0.0)
    book.seen("c1", 4.2)
    e1.rows = 37
    e1.missing_s = e1.last_seen_s
    e2 = book.join("c2", "w2", None, 5.0)
    e2.rows, e2.finished, e2.left_s = 12, True, 8.0
    assert [e.name for e in book.live()] == ["w0"]
    assert book.regions() == {"w0": None}
    rows = book.summary()
    assert [r["status"] for r in rows] == ["ok", "missing", "left"]
    assert rows[1]["missing_since_s"] == 4.2 and rows[1]["records"] == 37
    lines = worker_lines(rows)
    assert len(lines) == 2
    assert lines[0].startswith("worker w1 (eu) went missing at 4.2 s")
    assert "37 records" in lines[0]
    assert lines[1] == "worker w2 left at 8.0 s after sending its 12 records"
    # a worker that comes back is live again
    book.join("c1", "w1", "eu", 9.0)
    assert {e.name for e in book.live()} == {"w0", "w1"}


@pytest.mark.timeout(30)
def test_scheduler_cut_stops_before_the_switch_time() -> None:
    import time

    fired: list[float] = []
    arrivals = np.arange(0.0, 0.3, 0.01)
    sched = OpenLoopScheduler(arrivals, lambda i, t: fired.append(t), run_t0=time.perf_counter())
    sched.cut(0.15)
    stats = sched.run()
    sched.drain(1.0)
    assert fired and max(fired) < 0.15
    assert sched.handed_over == int(np.sum(arrivals >= 0.15))
    assert stats.fired + sched.handed_over == arrivals.size and stats.refused == 0


def test_a_worker_that_came_back_is_listed_with_its_silence() -> None:
    book = WorkerBook()
    e = book.join("c0", "w0", None, 0.0)
    e.silent.append((3.0, 7.5))
    (row,) = book.summary()
    assert row["status"] == "ok" and row["silent"] == [[3.0, 7.5]]
    assert worker_lines([row]) == [
        "worker w0 was silent from 3.0 s to 7.5 s (no heartbeat: its share went to the "
        "others meanwhile)"
    ]
