"""A whole run's workload plan from one seed: when each session starts, from which region,
as which workload, and the structure of every session.

Each concern draws from its own stream derived from the seed (`rng_for(seed, *keys)`), so
adding a region does not change the token counts, and the same seed gives the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loadkit.workload.daily import DayClock
from loadkit.workload.rates import Process, RateCurve
from loadkit.workload.regions import RegionLoad, assign_regions, regional_arrivals
from loadkit.workload.sessions import SessionPlan, Workload, sample_sessions
from loadkit.workload.traces import Trace

_ARRIVALS, _MIX, _SESSIONS, _TRACE = 1, 2, 3, 4


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    """An independent generator for (seed, keys...), e.g. `rng_for(seed, worker, user)`."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, keys)]))


@dataclass(frozen=True)
class OpenLoop:
    """Open-loop session arrivals: a rate curve, a process and optional regions/daily clock."""

    curve: RateCurve
    duration_s: float
    process: Process = "poisson"
    cv: float = 1.0
    regions: tuple[RegionLoad, ...] = (RegionLoad("default", 1.0),)
    clock: DayClock | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.duration_s) and self.duration_s > 0):
            raise ValueError(f"duration_s must be > 0, got {self.duration_s!r}")


@dataclass(frozen=True, eq=False)
class Plan:
    """Sessions in start order. `index` points into `sessions[workload]`."""

    t_s: np.ndarray  # float64 session start (intended send time of its first turn)
    region: np.ndarray  # int64
    workload: np.ndarray  # int64 index into `workloads`
    index: np.ndarray  # int64 session index within `sessions[workload]`
    workloads: tuple[Workload, ...]
    sessions: tuple[SessionPlan, ...]
    region_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.t_s.size)

    def same_as(self, other: Plan) -> bool:
        arrays = ("t_s", "region", "workload", "index")
        return (
            all(np.array_equal(getattr(self, a), getattr(other, a)) for a in arrays)
            and self.workloads == other.workloads
            and len(self.sessions) == len(other.sessions)
            and all(a.same_as(b) for a, b in zip(self.sessions, other.sessions, strict=True))
        )


def _mix(weights: Sequence[float], n: int, rng: np.random.Generator) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or np.any(~np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("workload weights must be > 0")
    return assign_regions(w / w.sum(), n, rng)


def _assemble(
    t: np.ndarray,
    region: np.ndarray,
    workloads: Sequence[Workload],
    weights: Sequence[float],
    seed: int,
    region_names: tuple[str, ...],
) -> Plan:
    if len(workloads) != len(weights):
        raise ValueError(f"{len(workloads)} workloads but {len(weights)} weights")
    which = _mix(weights, t.size, rng_for(seed, _MIX))
    index = np.empty(t.size, dtype=np.int64)
    sessions = []
    for k, w in enumerate(workloads):
        mine = which == k
        index[mine] = np.arange(int(mine.sum()))
        sessions.append(sample_sessions(w, int(mine.sum()), rng_for(seed, _SESSIONS, k)))
    return Plan(t, region, which, index, tuple(workloads), tuple(sessions), region_names)


def plan_open_loop(
    load: OpenLoop, workloads: Sequence[Workload], weights: Sequence[float], seed: int
) -> Plan:
    """Session starts from the arrival process, regions by share (and daily curve)."""
    t, region = regional_arrivals(
        load.curve,
        load.regions,
        load.duration_s,
        rng_for(seed, _ARRIVALS),
        load.process,
        load.cv,
        load.clock,
    )
    names = tuple(r.name for r in load.regions)
    return _assemble(t, region, workloads, weights, seed, names)


def plan_trace(
    trace: Trace,
    workload: Workload,
    seed: int,
    regions: Sequence[RegionLoad] = (RegionLoad("default", 1.0),),
) -> Plan:
    """One single-turn session per trace row, with the row's exact token counts.

    The workload supplies what a trace does not say (system prefix, RAG flow); its turns are
    forced to 1. A trace's own `region` column (from `Trace.assign_regions`) is kept.
    """
    n = len(trace)
    region = (
        trace.region
        if trace.region is not None
        else assign_regions([r.share for r in regions], n, rng_for(seed, _TRACE))
    )
    sessions = sample_sessions(workload, n, rng_for(seed, _SESSIONS, 0))
    plan = SessionPlan(
        turns=np.ones(n, dtype=np.int64),
        first_turn=np.arange(n, dtype=np.int64),
        session=np.arange(n, dtype=np.int64),
        turn=np.zeros(n, dtype=np.int64),
        prompt_tokens=trace.input_tokens.astype(np.int64),
        output_tokens=np.maximum(trace.output_tokens, 1).astype(np.int64),
        think_s=np.zeros(n),
        system_prefix_tokens=workload.system_prefix_tokens,
        history=workload.history,
        chunk_tokens=None
        if sessions.chunk_tokens is None
        else sessions.chunk_tokens[sessions.first_turn],
        retrieval_delay_s=None
        if sessions.retrieval_delay_s is None
        else sessions.retrieval_delay_s[sessions.first_turn],
        hash_ids=trace.hash_ids if trace.hash_ids and any(trace.hash_ids) else None,
    )
    return Plan(
        t_s=trace.t_s.copy(),
        region=region.astype(np.int64),
        workload=np.zeros(n, dtype=np.int64),
        index=np.arange(n, dtype=np.int64),
        workloads=(workload,),
        sessions=(plan,),
        region_names=tuple(r.name for r in regions),
    )
