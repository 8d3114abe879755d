"""Distributed runs, the Locust side: who fires which arrivals, who is missing.

Locust is the engine (its master/worker channel, its user dispatcher, its heartbeats); this
module adds what a load test of an LLM service needs on top, free of Locust imports (the
locustfile uses it; the parent side, `loadkit.orchestration.run_distributed`, starts master
and workers):

- **Assignments** (open loop and trace replay): the master splits each region's arrivals
  among the workers serving that region (a worker started with `--region R` serves only R;
  the others serve every region without a worker of its own). When a worker joins or goes
  missing, the master sends new assignments effective a moment later (`SWITCH_LEAD_S`), so
  the arrivals from then on are split among the workers that are there; an arrival is
  fired by exactly one worker as long as the message arrives within that lead.
- The **worker book**: when each worker joined, its region, when it was last heard from,
  and whether it left (sent its last batch) or went missing (stopped answering
  heartbeats); the master reports it in summary.json and under the summary table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

HELLO = "loadkit_hello"
ASSIGN = "loadkit_assign"
# New assignments take effect this long after the master sends them.
SWITCH_LEAD_S = 1.0


# -- assignments ----------------------------------------------------------------------------


def split_regions(
    workers: dict[str, str | None], regions: list[str]
) -> tuple[dict[str, dict[str, tuple[int, int]]], list[str]]:
    """worker -> {region: (slot, count)}, and the regions no worker serves.

    A region's arrivals go to the workers started for it; without one, to the workers
    started without a region. Workers are taken in name order so every process agrees.
    """
    out: dict[str, dict[str, tuple[int, int]]] = {w: {} for w in workers}
    unserved = []
    general = sorted((w for w, r in workers.items() if not r), key=_name_key)
    for region in regions:
        own = sorted((w for w, r in workers.items() if r == region), key=_name_key)
        servers = own or general
        if not servers:
            unserved.append(region)
            continue
        for slot, w in enumerate(servers):
            out[w][region] = (slot, len(servers))
    return out, unserved


def _name_key(name: str) -> tuple[int, str]:
    digits = name.lstrip("w")
    return (int(digits), name) if digits.isdigit() else (1 << 30, name)


def select_arrivals(
    t_s: np.ndarray,
    region: np.ndarray,
    region_names: tuple[str, ...] | list[str],
    serves: dict[str, tuple[int, int]],
    from_s: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """This worker's arrivals at or after `from_s`, and their indices in the plan.

    Within a region, arrival number k (in time order) goes to slot k mod count, so the
    region's workers share it evenly and together fire each arrival exactly once.
    """
    keep = np.zeros(t_s.size, dtype=bool)
    for name, (slot, count) in serves.items():
        if name not in region_names:
            continue
        pos = np.flatnonzero(region == region_names.index(name))
        keep[pos[slot::count]] = True
    keep &= t_s >= from_s
    idx = np.flatnonzero(keep).astype(np.int64)
    return t_s[idx], idx


# -- the worker book ------------------------------------------------------------------------


@dataclass
class WorkerEntry:
    name: str
    client_id: str
    region: str | None
    joined_s: float
    last_seen_s: float
    rows: int = 0
    finished: bool = False  # sent its last batch
    missing_s: float | None = None  # when it was last heard from, once it went missing
    left_s: float | None = None  # quit on its own (after its last batch)
    silent: list[tuple[float, float]] = field(default_factory=list)  # missing, then back

    @property
    def live(self) -> bool:
        return self.missing_s is None and self.left_s is None

    def as_dict(self) -> dict[str, Any]:
        status = "ok" if self.live else ("missing" if self.missing_s is not None else "left")
        return {
            "worker": self.name,
            "region": self.region,
            "status": status,
            "joined_s": round(self.joined_s, 3),
            "missing_since_s": None if self.missing_s is None else round(self.missing_s, 3),
            "left_s": None if self.left_s is None else round(self.left_s, 3),
            "records": self.rows,
            "last_batch": self.finished,
            "silent": [list(g) for g in self.silent],
        }


@dataclass
class WorkerBook:
    """The master's view of its workers over the run (times in run seconds)."""

    entries: dict[str, WorkerEntry] = field(default_factory=dict)  # by Locust client id

    def join(self, client_id: str, name: str, region: str | None, t_s: float) -> WorkerEntry:
        e = self.entries.get(client_id)
        if e is None:
            e = self.entries[client_id] = WorkerEntry(name, client_id, region, t_s, t_s)
        else:
            e.region, e.last_seen_s = region, t_s
            e.missing_s = e.left_s = None  # back again (Locust calls it self-healed)
        return e

    def seen(self, client_id: str, t_s: float) -> None:
        e = self.entries.get(client_id)
        if e is not None:
            e.last_seen_s = max(e.last_seen_s, t_s)

    def by_name(self, name: str) -> WorkerEntry | None:
        return next((e for e in self.entries.values() if e.name == name), None)

    def live(self) -> list[WorkerEntry]:
        return [e for e in self.entries.values() if e.live]

    def regions(self) -> dict[str, str | None]:
        return {e.name: e.region for e in self.live()}

    def summary(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in sorted(self.entries.values(), key=lambda e: _name_key(e.name))]
