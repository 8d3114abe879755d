"""Offered against served (loadkit.analysis.offered) and its verdict row."""

from __future__ import annotations

import math
from typing import Any

import pytest

from loadkit.analysis.offered import arrival_rows, offered
from loadkit.analysis.requests import logical
from loadkit.analysis.run import RunFacts, analyse
from tests.analysis_support import columns

KEPT_UP = "the service kept up with the planned load"


def _sent(n: int, lag_ms: float = 5.0, **over: Any) -> dict[str, Any]:
    t = n * 100.0  # 10 arrivals/s
    return {
        "request_id": f"r{n}",
        "session_id": f"chat-{n}",
        "t_intended": t,
        "t_sent": t + lag_ms,
        "sched_lag_ms": lag_ms,
        **over,
    }


def _not_sent(n: int) -> dict[str, Any]:
    return {
        "request_id": f"u{n}",
        "session_id": f"chat-{n}",
        "t_intended": n * 100.0,
        "t_sent": math.nan,
        "sched_lag_ms": math.nan,
        "ttft_ms": math.nan,
        "e2e_ms": math.nan,
        "outcome": "not_sent",
        "status": 0,
        "cost_usd": math.nan,
    }


def _schedule(planned: int, **over: Any) -> dict[str, Any]:
    return {
        "planned": planned,
        "fired": planned,
        "not_sent": 0,
        "skipped": {},
        "max_in_flight": 4,
        "processes": 1,
        "cap_full_s": 0.0,
        "waited_for_slot": 0,
        "duration_s": planned / 10.0,
        "phases": [
            {"name": "phase 1 (10/s)", "t0_s": 0.0, "t1_s": planned / 10.0, "planned": planned}
        ],
        "planned_bin_s": 1.0,
        "planned_per_bin": [10] * (planned // 10) + [0],
        **over,
    }


def _verdict_item(cols, schedule, max_lag_s=None) -> dict[str, Any]:
    a = analyse(cols, RunFacts(schedule=schedule, max_lag_s=max_lag_s))
    return next(i for i in a.extra["verdict"]["items"] if i["check"] == KEPT_UP)


def test_a_kept_up_schedule_is_go() -> None:
    cols = columns([_sent(n) for n in range(40)])
    o = offered(cols, logical(cols), _schedule(40))
    assert o["kept_up"] and o["reason"] == ""
    assert o["planned"] == o["sent"] == o["served"] == 40 and o["not_sent"] == 0
    assert o["planned_per_s"] == pytest.approx(10.0)
    assert o["sent_per_s"] == pytest.approx(10.0)
    assert o["sched_lag_ms"]["p95"] == pytest.approx(5.0)
    (p,) = o["phases"]
    assert p["planned_per_s"] == pytest.approx(10.0) and p["sent"] == 40
    item = _verdict_item(cols, _schedule(40))
    assert item["status"] == "go" and "40 of 40 planned arrivals sent" in item["evidence"]


def test_never_sent_arrivals_are_no_go_and_named() -> None:
    rows = [_sent(n) for n in range(12)] + [_not_sent(n) for n in range(12, 40)]
    sched = _schedule(40, fired=12, not_sent=28, cap_full_s=3.4)
    cols = columns(rows)
    o = offered(cols, logical(cols), sched)
    assert not o["kept_up"] and o["not_sent"] == 28 and o["sent"] == 12
    assert o["reason"].startswith("10/s planned, ")
    assert "28 of 40 arrivals (70%) never sent" in o["reason"]
    assert "max_in_flight 4 was full for 3 s" in o["reason"]
    a = analyse(cols, RunFacts(schedule=sched))
    v = a.extra["verdict"]
    item = next(i for i in v["items"] if i["check"] == KEPT_UP)
    assert item["status"] == "no-go" and v["overall"] == "no-go"
    assert v["decided_by"] == item["reason"]  # the first row: it names the cause
    assert a.summary["error_rate"] == pytest.approx(28 / 40)  # not_sent rows are failures
    assert a.extra["goodput"]["good_requests"] == 12


def test_lag_over_the_limit_is_no_go_and_the_limit_is_the_scenarios() -> None:
    cols = columns([_sent(n, lag_ms=1500.0) for n in range(40)])
    item = _verdict_item(cols, _schedule(40))
    assert item["status"] == "no-go"
    assert "schedule lag p95 1.50 s > 1 s" in item["reason"]
    assert _verdict_item(cols, _schedule(40), max_lag_s=2.0)["status"] == "go"


def test_skipped_arrivals_are_a_reason_not_a_failure() -> None:
    cols = columns([_sent(n) for n in range(20)])
    sched = _schedule(40, fired=20, skipped={"budget reached (20 of 20 requests)": 20})
    item = _verdict_item(cols, sched)
    assert item["status"] == "go"
    assert "20 not yet due when the run stopped (budget reached" in item["evidence"]


def test_closed_loop_is_not_tested_and_says_why() -> None:
    cols = columns([{"request_id": f"r{n}", "t_sent": n * 100.0} for n in range(20)])
    a = analyse(cols, RunFacts())
    item = next(i for i in a.extra["verdict"]["items"] if i["check"] == KEPT_UP)
    assert item["status"] == "not tested" and "closed loop" in item["evidence"]
    assert "offered" not in a.extra


def test_arrivals_are_each_sessions_first_request() -> None:
    rows = [
        _sent(0),
        {**_sent(0), "request_id": "r0b", "turn": 1, "t_intended": 900.0},  # a later turn
        {**_sent(0), "request_id": "r0", "attempt": 1, "t_intended": 0.0},  # its retry
        _sent(1),
    ]
    cols = columns(rows)
    assert arrival_rows(cols).tolist() == [0, 3]


def test_the_series_draw_planned_sent_and_served() -> None:
    rows = [_sent(n) for n in range(12)] + [_not_sent(n) for n in range(12, 40)]
    a = analyse(columns(rows), RunFacts(schedule=_schedule(40, not_sent=28)))
    planned = a.series["planned_arrivals_rps"]
    assert planned.sum() * a.windows.width_s == pytest.approx(40.0)
    assert a.series["sent_arrivals_rps"].sum() * a.windows.width_s == pytest.approx(12.0)
    assert a.series["served_arrivals_rps"].sum() * a.windows.width_s == pytest.approx(12.0)


def test_arrivals_no_load_generator_ran_are_said_not_hidden() -> None:
    # e.g. a region no worker served: 20 of 40 planned arrivals were never scheduled
    cols = columns([_sent(n) for n in range(20)])
    o = offered(cols, logical(cols), _schedule(40, fired=20))
    assert o["unrun"] == 20
    assert "20 run by no load generator" in o["evidence"]
