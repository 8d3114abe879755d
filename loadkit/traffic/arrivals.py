"""Every planned open-loop arrival, accounted for: sent, not sent (a record), or skipped.

When the open-loop scheduler stops (`loadkit.traffic.openloop`), each arrival it did not
fire is one of two things:
- due before the stop: it waited for a free slot (`max_in_flight` requests were
  outstanding) until the run ended. A user who got no answer: a `not_sent` record with its
  `t_intended`, no `t_sent`, so error rate, goodput and the verdict count it;
- not yet due (or the one the budget guard refused): the run was stopped (budget reached,
  Ctrl-C, an abort) before it came. Not a failure of the service: counted in
  `skipped[reason]`, no record.

Each process keeps a `Tally`; workers send theirs with their last batch of records
(`loadkit.traffic.shipping`) and the master (or the only process) adds them up and writes
the run folder's `schedule.json`, which analysis reads (`loadkit.analysis.offered`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loadkit.results.schema import NAN, RequestRecord

NOT_SENT = "not_sent"
# The planned-arrival histogram's bin: at least 1 s, at most this many bins.
_MAX_BINS = 2000


@dataclass
class Tally:
    """One process's (or, summed, the run's) fate of its planned arrivals."""

    fired: int = 0
    not_sent: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    waited_for_slot: int = 0
    cap_full_s: float = 0.0  # the longest any one process's cap was full
    max_in_flight_seen: int = 0

    def add(self, other: Tally | dict[str, Any]) -> None:
        o = other if isinstance(other, Tally) else Tally.from_json(other)
        self.fired += o.fired
        self.not_sent += o.not_sent
        for k, v in o.skipped.items():
            self.skipped[k] = self.skipped.get(k, 0) + v
        self.waited_for_slot += o.waited_for_slot
        self.cap_full_s = max(self.cap_full_s, o.cap_full_s)
        self.max_in_flight_seen = max(self.max_in_flight_seen, o.max_in_flight_seen)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["cap_full_s"] = round(self.cap_full_s, 3)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Tally:
        return cls(
            fired=int(d.get("fired", 0)),
            not_sent=int(d.get("not_sent", 0)),
            skipped={str(k): int(v) for k, v in (d.get("skipped") or {}).items()},
            waited_for_slot=int(d.get("waited_for_slot", 0)),
            cap_full_s=float(d.get("cap_full_s", 0.0)),
            max_in_flight_seen=int(d.get("max_in_flight_seen", 0)),
        )


def not_sent_record(plan: Any, ctx: Any, i: int, t_s: float, cap: int | None) -> RequestRecord:
    """The record of arrival `i` of `plan`, due at `t_s` on the run clock, never sent."""
    sc = ctx.scenario
    wk = int(plan.workload[i])
    name = plan.workloads[wk].name
    wl = next((w for w in sc.workloads if w.name == name), None)
    model = (getattr(wl, "model", None) or sc.target.model) if wl else sc.target.model
    region = plan.region_names[int(plan.region[i])]
    why = f"max_in_flight {cap} " if cap else "the in-flight cap "
    return RequestRecord(
        run_id=ctx.run_id,
        request_id=f"{ctx.worker}-{NOT_SENT}-{i}",
        attempt=0,
        worker=str(ctx.worker),
        region=region,
        workload=name,
        session_id=f"{name}-{int(plan.index[i])}",
        turn=0,
        model=str(model),
        endpoint=str(ctx.endpoints.get(region, "")),
        t_intended=t_s * 1000.0,
        t_sent=NAN,
        sched_lag_ms=NAN,
        ttft_ms=NAN,
        e2e_ms=NAN,
        itl_mean_ms=NAN,
        itl_p99_ms=NAN,
        itl_max_ms=NAN,
        status=0,
        outcome=NOT_SENT,
        error=f"not sent: the run ended while it waited for a free slot ({why}was full)",
        prompt_tokens=0,
        completion_tokens=0,
        cached_tokens=0,
        tokens_source="",  # nothing was sent: no tokens to count or estimate
        cost_usd=NAN,
        fault="",
        headers=tuple("" for _ in sc.target.record_headers),
    )


def account(sched: Any, plan: Any, ctx: Any, reason: str, tally: Tally) -> None:
    """Add a stopped scheduler's arrivals to `tally`; record the ones that waited for a slot."""
    due, skipped = sched.unsent()
    stats = sched.stats()
    cap = getattr(sched, "_cap", None)
    for i, t_s in due:
        ctx.record(not_sent_record(plan, ctx, i, t_s, cap))
    tally.add(
        Tally(
            fired=stats.fired,
            not_sent=len(due),
            skipped={reason or "stopped": skipped} if skipped else {},
            waited_for_slot=stats.waited_for_slot,
            cap_full_s=stats.cap_full_s,
            max_in_flight_seen=stats.max_in_flight_seen,
        )
    )


def planned_histogram(t_s: np.ndarray, duration_s: float) -> tuple[float, list[int]]:
    """(bin width s, planned arrivals per bin from 0): the offered curve analysis draws."""
    span = max(float(duration_s), float(t_s.max()) if t_s.size else 0.0, 1.0)
    width = max(1.0, math.ceil(span / _MAX_BINS))
    n = math.ceil(span / width) + 1
    k = np.minimum((np.asarray(t_s, dtype=np.float64) // width).astype(np.int64), n - 1)
    return width, np.bincount(k, minlength=n).astype(int).tolist()


def phases_of(scenario: Any, scale: float, t_s: np.ndarray) -> list[dict[str, Any]]:
    """The spans rates are compared over, on the run clock: the open load's phases, else
    (daily curve, trace) up to 10 equal windows."""
    load = scenario.load
    spans: list[tuple[str, float, float]] = []
    phases = getattr(load, "phases", None)
    if phases and getattr(load, "daily", None) is None:
        t = 0.0
        for n, p in enumerate(phases):
            d = float(p.duration_s) * scale
            a, b = float(p.rate_start), float(p.rate_end)
            rate = f"{a:g}/s" if math.isclose(a, b) else f"{a:g}/s to {b:g}/s"
            spans.append((f"phase {n + 1} ({rate})", t, t + d))
            t += d
    else:
        end = max(float(scenario.duration_s) * scale, float(t_s.max()) if t_s.size else 0.0)
        k = max(1, min(10, int(end // 1.0)))
        edges = np.linspace(0.0, end, k + 1)
        spans = [(f"window {n + 1}", float(edges[n]), float(edges[n + 1])) for n in range(k)]
    out = []
    for name, a, b in spans:
        last = b == spans[-1][2]
        m = (t_s >= a) & ((t_s <= b) if last else (t_s < b))
        planned = int(m.sum())
        out.append({"name": name, "t0_s": round(a, 3), "t1_s": round(b, 3), "planned": planned})
    return out


def write_schedule(
    path: Path,
    plan: Any,
    scenario: Any,
    scale: float,
    duration_s: float,
    tally: Tally,
    processes: int,
    stop_reason: str,
) -> None:
    """The run folder's schedule.json: what was planned and what became of it."""
    t_s = np.asarray(plan.t_s, dtype=np.float64)
    width, hist = planned_histogram(t_s, duration_s)
    cap = getattr(scenario.load, "max_in_flight", None)
    counts = tally.to_json()
    # A worker knows it was stopped, not why: the master's reason names its skipped arrivals.
    if "stopped" in counts["skipped"] and stop_reason not in ("", "completed"):
        n = counts["skipped"].pop("stopped")
        counts["skipped"][stop_reason] = counts["skipped"].get(stop_reason, 0) + n
    doc = {
        "planned": int(t_s.size),
        **counts,
        "max_in_flight": cap,
        "processes": max(int(processes), 1),
        "stop_reason": stop_reason,
        "duration_s": round(float(duration_s), 3),
        "phases": phases_of(scenario, scale, t_s),
        "planned_bin_s": width,
        "planned_per_bin": hist,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
