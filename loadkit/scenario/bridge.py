"""The scenario in the workload layer's terms (sessions, rate curves, regions, day clock).

The traffic layer and `loadkit validate` both sample through `loadkit.workload`; these
adapters are the one place that maps scenario fields onto those types.
"""

from __future__ import annotations

from loadkit.scenario.model import ClosedLoad, OpenLoad, Scenario, TraceLoad, Workload
from loadkit.workload.daily import DailyCurve, DayClock
from loadkit.workload.distributions import Constant
from loadkit.workload.rates import RateCurve
from loadkit.workload.regions import RegionLoad
from loadkit.workload.sessions import RagFlow
from loadkit.workload.sessions import Workload as SessionWorkload


def session_workload(workload: Workload) -> SessionWorkload:
    """A scenario workload as the session sampler's persona.

    RAG: the scenario's `context_tokens` is the whole retrieved context, so it becomes one
    chunk of that many tokens.
    """
    rag = None
    if workload.rag is not None:
        rag = RagFlow(
            chunks=1,
            chunk_tokens=workload.rag.context_tokens,
            retrieval_delay_s=workload.rag.retrieval_delay_s,
        )
    return SessionWorkload(
        name=workload.name,
        prompt_tokens=workload.prompt_tokens,
        output_tokens=workload.output_tokens,
        system_prefix_tokens=workload.system_prefix_tokens,
        turns=workload.turns if workload.turns is not None else Constant(1),
        think_time_s=workload.think_time_s if workload.think_time_s is not None else Constant(0.0),
        history=workload.history,
        rag=rag,
    )


def day_clock(scenario: Scenario) -> DayClock | None:
    """The 24 h day compressed into the run, or None without a daily curve."""
    daily = scenario.load.daily
    if daily is None:
        return None
    return DayClock(start_utc_hour=daily.start_utc_hour, span_s=scenario.duration_s)


def region_loads(scenario: Scenario) -> tuple[RegionLoad, ...]:
    """Regions with their share, UTC offset and (if any) the scenario's daily curve."""
    daily = scenario.load.daily
    curve = DailyCurve(daily.hourly) if daily is not None else None
    total = sum(r.share for r in scenario.regions)
    return tuple(
        RegionLoad(r.name, r.share / total, r.utc_offset_h, curve) for r in scenario.regions
    )


def rate_curve(load: OpenLoad) -> RateCurve:
    """Open-loop session arrival rate over the run (before daily curves)."""
    return RateCurve.from_phases([(p.duration_s, p.rate_start, p.rate_end) for p in load.phases])


def users_at(load: ClosedLoad, t_s: float) -> float:
    """Closed-loop target users at run time `t_s` (ramp linear, spike back to the level)."""
    t = 0.0
    level = 0.0
    for phase in load.phases:
        end = t + phase.duration_s
        if t_s < end:
            if phase.kind == "ramp":
                return level + (phase.users - level) * (t_s - t) / phase.duration_s
            return float(phase.users)
        if phase.kind != "spike":
            level = float(phase.users)
        t = end
    return 0.0


def is_trace(scenario: Scenario) -> bool:
    return isinstance(scenario.load, TraceLoad)
