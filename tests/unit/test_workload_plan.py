"""Whole-run plans: the same seed gives the same plan; mixes and regions are honoured."""

from __future__ import annotations

import numpy as np
import pytest

from loadkit.workload.daily import DayClock, named_curve
from loadkit.workload.distributions import Constant, LogNormal, Uniform
from loadkit.workload.plan import OpenLoop, plan_open_loop, plan_trace, rng_for
from loadkit.workload.rates import RateCurve
from loadkit.workload.regions import RegionLoad
from loadkit.workload.sessions import RagFlow, Workload
from loadkit.workload.traces import Trace

WORKLOADS = (
    Workload(
        "chat",
        LogNormal(1020, 2735),
        LogNormal(129, 424),
        system_prefix_tokens=300,
        turns=Uniform(1, 5),
        think_time_s=LogNormal(5, 20),
    ),
    Workload("rag", Constant(40), LogNormal(200, 500), rag=RagFlow(chunks=3)),
)
LOAD = OpenLoop(
    curve=RateCurve.from_phases([(100, 5, 5), (200, 5, 30)]),
    duration_s=300.0,
    process="gamma",
    cv=1.5,
    regions=(
        RegionLoad("us-east", 0.5, -5.0, named_curve("conversation")),
        RegionLoad("eu-west", 0.3, 1.0, named_curve("conversation")),
        RegionLoad("ap-tokyo", 0.2, 9.0, named_curve("conversation")),
    ),
    clock=DayClock(8.0, 300.0),
)


def test_same_seed_identical_plan_other_seed_differs():
    a = plan_open_loop(LOAD, WORKLOADS, (3, 1), seed=42)
    b = plan_open_loop(LOAD, WORKLOADS, (3, 1), seed=42)
    c = plan_open_loop(LOAD, WORKLOADS, (3, 1), seed=43)
    assert a.same_as(b)
    assert not a.same_as(c)
    assert len(a) > 1000


def test_plan_parts_are_consistent():
    p = plan_open_loop(LOAD, WORKLOADS, (3, 1), seed=7)
    assert np.all(np.diff(p.t_s) >= 0) and p.t_s[-1] < 300.0
    assert p.region_names == ("us-east", "eu-west", "ap-tokyo")
    assert np.bincount(p.workload) / len(p) == pytest.approx([0.75, 0.25], abs=0.03)
    for k, s in enumerate(p.sessions):
        assert s.n_sessions == int((p.workload == k).sum())
        assert np.array_equal(np.sort(p.index[p.workload == k]), np.arange(s.n_sessions))
    assert p.sessions[1].chunk_tokens.shape[1] == 3


def test_token_streams_do_not_depend_on_the_arrival_settings():
    other = OpenLoop(RateCurve.constant(50.0), 300.0)
    a = plan_open_loop(LOAD, WORKLOADS, (3, 1), seed=5)
    b = plan_open_loop(other, WORKLOADS, (3, 1), seed=5)
    # sessions are drawn from their own stream: the first sessions' token counts agree
    ta, tb = a.sessions[0].turns, b.sessions[0].turns
    m = min(ta.size, tb.size)
    assert m > 100 and np.array_equal(ta[:m], tb[:m])


def test_rng_for_gives_independent_reproducible_streams():
    a = rng_for(1, 2, 3).random(5)
    assert np.array_equal(a, rng_for(1, 2, 3).random(5))
    assert not np.array_equal(a, rng_for(1, 3, 2).random(5))


def test_trace_plan_takes_tokens_and_times_from_the_trace():
    t = Trace(
        t_s=np.array([0.0, 0.5, 2.0]),
        input_tokens=np.array([100, 2000, 30]),
        output_tokens=np.array([10, 0, 300]),
        failed=np.array([False, True, False]),
    ).assign_regions([0.5, 0.5], np.random.default_rng(0))
    regions = (RegionLoad("a", 0.5), RegionLoad("b", 0.5))
    p = plan_trace(t, WORKLOADS[0], seed=1, regions=regions)
    s = p.sessions[0]
    assert p.t_s.tolist() == [0.0, 0.5, 2.0]
    assert s.prompt_tokens.tolist() == [100, 2000, 30]
    assert s.output_tokens.tolist() == [10, 1, 300]  # max_tokens of at least 1
    assert s.turns.tolist() == [1, 1, 1] and np.all(s.think_s == 0)
    assert np.array_equal(p.region, t.region)
    assert s.system_prefix_tokens == 300
