"""The run's timeline in Locust's terms: which users, how many, until when.

Closed loop: the phases' user curve (`shape.user_profile`, compressed by `--duration` and
scaled by `--users`), times the scenario's daily curve when it has one (each region's share
times its curve at its local hour), asked by the LoadTestShape every second; the users are
the client layer's closed-loop classes.

Open loop and trace replay: the whole session schedule is drawn up front from the seed
(`loadkit.workload.plan`), on the compressed time axis; the shape runs exactly one
`OpenLoopDriver` user per load-generator process, and each driver fires its share of the
schedule with the open-loop scheduler. A trace compressed by `--duration` is sped up and
thinned by the same factor, so its request rate and its shape are kept.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from loadkit.scenario import bridge
from loadkit.scenario.model import ClosedLoad, OpenLoad, Scenario, TraceLoad
from loadkit.traffic.shape import tick_at, user_profile, users_factor_for
from loadkit.workload.daily import DayClock

# Stream ids for rng_for(seed, ...) used here (loadkit.workload.plan uses 1-4).
_TRACE_THIN = 41


def day_clock(scenario: Scenario, scale: float) -> DayClock | None:
    daily = scenario.load.daily
    if daily is None:
        return None
    return DayClock(start_utc_hour=daily.start_utc_hour, span_s=scenario.duration_s * scale)


def daily_factor(scenario: Scenario, scale: float) -> Any:
    """t -> sum over regions of share x daily multiplier (1.0 without a daily curve)."""
    clock = day_clock(scenario, scale)
    if clock is None:
        return lambda t: 1.0
    regions = bridge.region_loads(scenario)

    def factor(t: float) -> float:
        ts = np.asarray([t], dtype=np.float64)
        return float(sum(r.share * r.multiplier(ts, clock)[0] for r in regions))

    return factor


@dataclasses.dataclass
class ClosedTimeline:
    """Closed-loop user counts over the run."""

    scenario: Scenario
    scale: float
    users_override: int | None

    def __post_init__(self) -> None:
        load = self.scenario.load
        assert isinstance(load, ClosedLoad)
        peak = user_profile(load.phases, load.spawn_rate).peak_users
        self.profile = user_profile(
            load.phases, load.spawn_rate, self.scale, users_factor_for(peak, self.users_override)
        )
        self._factor = daily_factor(self.scenario, self.scale)

    @property
    def duration_s(self) -> float:
        return self.profile.duration_s

    def tick(self, t_s: float) -> tuple[int, float] | None:
        got = tick_at(self.profile, t_s)
        if got is None:
            return None
        users, rate = got
        f = self._factor(t_s)
        return (round(users * f) if users else 0), rate


def open_plan(scenario: Scenario, scale: float) -> Any:
    """The seeded session schedule (loadkit.workload.plan.Plan) on the compressed time axis."""
    from loadkit.workload.plan import OpenLoop, plan_open_loop, plan_trace, rng_for
    from loadkit.workload.rates import RateCurve

    load = scenario.load
    workloads = [bridge.session_workload(w) for w in scenario.workloads]
    weights = [w.weight for w in scenario.workloads]
    regions = bridge.region_loads(scenario)
    if isinstance(load, OpenLoad):
        curve = RateCurve.from_phases(
            [(p.duration_s * scale, p.rate_start, p.rate_end) for p in load.phases]
        )
        spec = OpenLoop(
            curve=curve,
            duration_s=scenario.duration_s * scale,
            process=load.process,
            cv=load.cv,
            regions=regions,
            clock=day_clock(scenario, scale),
        )
        return plan_open_loop(spec, workloads, weights, scenario.seed)
    assert isinstance(load, TraceLoad)
    trace = read_scenario_trace(load, scenario.seed)
    trace = trace.take(trace.t_s < scenario.duration_s)
    if not math.isclose(scale, 1.0):
        trace = trace.time_scale(1.0 / scale)
        if scale < 1.0:
            trace = trace.rate_scale(scale, rng_for(scenario.seed, _TRACE_THIN))
    return plan_trace(trace, workloads[0], scenario.seed, regions)


def read_scenario_trace(load: TraceLoad, seed: int) -> Any:
    from loadkit.workload.traces import read_trace

    trace = read_trace(load.path, load.format)
    if load.window is not None:
        trace = trace.window(*load.window)
    if load.time_scale != 1.0:
        trace = trace.time_scale(load.time_scale)
    if load.rate_scale != 1.0:
        from loadkit.workload.plan import rng_for

        trace = trace.rate_scale(load.rate_scale, rng_for(seed, _TRACE_THIN, 1))
    return trace


@dataclasses.dataclass
class OpenTimeline:
    """One driver user per process for the length of the schedule."""

    scenario: Scenario
    scale: float
    processes: int

    def __post_init__(self) -> None:
        self.plan = open_plan(self.scenario, self.scale)
        self.max_in_flight = getattr(self.scenario.load, "max_in_flight", None)
        ends = [self.scenario.duration_s * self.scale]
        if len(self.plan):
            ends.append(float(self.plan.t_s[-1]))
        self._duration = max(ends)

    @property
    def duration_s(self) -> float:
        return self._duration

    def tick(self, t_s: float, driver: type) -> tuple[int, float, list[type]] | None:
        # A little past the last arrival, so a scheduler running a few ms late still fires it.
        if t_s >= self._duration + 0.5:
            return None
        n = max(self.processes, 1)
        return n, float(n), [driver]


def is_open(scenario: Scenario) -> bool:
    return isinstance(scenario.load, OpenLoad | TraceLoad)
