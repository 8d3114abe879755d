"""Offered against served: did the service keep up with the planned open-loop load?

An open-loop run plans its arrivals up front. Each is sent at its intended time unless
`max_in_flight` requests are outstanding; then it waits for a slot (schedule lag), and if
the run ends first it is never sent (a `not_sent` record). So three rates describe the
load, in arrivals per second (an arrival starts a session; for single-turn workloads it is
one request):
- planned: the schedule (the run folder's `schedule.json`, `loadkit.traffic.arrivals`);
- sent: arrivals whose first request went out (by send time);
- served: arrivals whose first request was answered ok (by the time it ended).

The service kept up when every planned arrival that came due was sent and the schedule
lag's p95 is within the limit (`load.max_schedule_lag`, default `DEFAULT_MAX_LAG_S`): past
it, the load generator held users back because the service was saturated, and what was
measured is a smaller load than the one planned. Overall planned and sent rates divide by
the schedule's length; the served rate is the pace answers came at (answers - 1 over the
seconds from the first answer to the last), so neither the first answer's latency nor the
drain after the schedule dilutes it. Reads records and the schedule's JSON, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from loadkit.analysis import windows as W
from loadkit.analysis.requests import Logical

# Schedule lag p95 past which the service did not keep up (scenario: load.max_schedule_lag).
DEFAULT_MAX_LAG_S = 1.0
NOT_SENT = "not_sent"


def _f(cols: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(cols[name], dtype=np.float64)


def arrival_rows(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    """Indices of the rows that are arrivals: per session, the first request's first
    attempt (the earliest intended time); open-loop rows only."""
    t_int = _f(cols, "t_intended")
    first = (
        np.isfinite(t_int)
        & (np.asarray(cols["attempt"], dtype=np.int64) == 0)
        & (np.asarray(cols["turn"], dtype=np.int64) == 0)
    )
    idx = np.flatnonzero(first)
    if idx.size == 0:
        return idx
    sess = np.asarray(cols["session_id"]).astype(str)[idx]
    order = np.lexsort((t_int[idx], sess))
    s_sorted = sess[order]
    keep = np.ones(order.size, dtype=bool)
    keep[1:] = s_sorted[1:] != s_sorted[:-1]
    return np.sort(idx[order[keep]])


def _rate(n: float, span_s: float) -> float:
    return round(n / span_s, 3) if span_s > 0 else 0.0


def _served_rate(end_ms: np.ndarray, span_s: float) -> float:
    """Answers per second at the pace they came: (n - 1) over first to last answer (the
    service's own rate, untouched by the first answer's latency or the drain's length)."""
    end = np.sort(end_ms[np.isfinite(end_ms)])
    if end.size >= 2 and end[-1] > end[0]:
        return round((end.size - 1) / ((end[-1] - end[0]) / 1000.0), 3)
    return _rate(int(end.size), span_s)


def _lag(values: np.ndarray) -> dict[str, float | int | None]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None, "n": 0}
    p50, p95, p99 = np.percentile(v, [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(v.max()), 3),
        "n": int(v.size),
    }


def offered(
    cols: Mapping[str, np.ndarray],
    lr: Logical,
    schedule: Mapping[str, Any] | None,
    max_lag_s: float | None = None,
) -> dict[str, Any]:
    """summary.json's `offered` section (open-loop runs): planned, sent, served, the wait
    for slots, the lag, and whether the service kept up (`kept_up`, `reason`)."""
    limit_s = DEFAULT_MAX_LAG_S if max_lag_s is None else float(max_lag_s)
    sched = dict(schedule or {})
    rows = arrival_rows(cols)
    t_sent = _f(cols, "t_sent")[rows]
    sent = np.isfinite(t_sent)
    not_sent = np.asarray(cols["outcome"]).astype(str)[rows] == NOT_SENT
    group = lr.attempt_group[rows] if lr.n else np.zeros(0, dtype=np.int64)
    served = lr.ok[group] if lr.n else np.zeros(0, dtype=bool)
    end = lr.end_ms[group] if lr.n else np.zeros(0)
    planned = sched.get("planned")
    span_s = float(sched.get("duration_s") or 0.0)
    if not span_s and rows.size:
        span_s = float(np.nanmax(_f(cols, "t_intended")[rows])) / 1000.0
    n_sent, n_served, n_not = int(sent.sum()), int(served.sum()), int(not_sent.sum())
    served_per_s = _served_rate(end[served], span_s)
    lag = _lag(_f(cols, "sched_lag_ms")[rows][sent])
    phases = []
    for p in sched.get("phases") or []:
        a, b = float(p["t0_s"]) * 1000.0, float(p["t1_s"]) * 1000.0
        d = (b - a) / 1000.0
        in_sent = sent & (t_sent >= a) & (t_sent < b)
        in_served = served & (end >= a) & (end < b)
        phases.append(
            {
                **p,
                "planned_per_s": _rate(int(p.get("planned", 0)), d),
                "sent": int(in_sent.sum()),
                "sent_per_s": _rate(int(in_sent.sum()), d),
                "served": int(in_served.sum()),
                "served_per_s": _rate(int(in_served.sum()), d),
            }
        )
    out: dict[str, Any] = {
        "planned": planned,
        "sent": n_sent,
        "not_sent": n_not,
        "skipped": dict(sched.get("skipped") or {}),
        "served": n_served,
        "schedule_s": round(span_s, 3),
        "planned_per_s": _rate(planned, span_s) if planned is not None else None,
        "sent_per_s": _rate(n_sent, span_s),
        "served_per_s": served_per_s,
        "max_in_flight": sched.get("max_in_flight"),
        "processes": sched.get("processes"),
        "cap_full_s": sched.get("cap_full_s"),
        "waited_for_slot": sched.get("waited_for_slot"),
        "sched_lag_ms": lag,
        "max_lag_ms": round(limit_s * 1000.0, 3),
        "phases": phases,
    }
    if planned is not None and "fired" in sched:
        # planned arrivals no scheduler had: a region no worker served, a worker lost
        out["unrun"] = max(
            int(planned)
            - int(sched["fired"])
            - int(sched.get("not_sent", 0))
            - sum(int(v) for v in out["skipped"].values()),
            0,
        )
    out.update(_judge(out, limit_s))
    return out


def _judge(o: Mapping[str, Any], limit_s: float) -> dict[str, Any]:
    """`kept_up` and, when not, the one-line `reason` naming what happened."""
    p95 = o["sched_lag_ms"]["p95"]
    lag_over = p95 is not None and p95 > limit_s * 1000.0
    n_not = int(o["not_sent"])
    planned = o["planned"]
    head = (
        f"{o['planned_per_s']:.3g}/s planned, "
        if o["planned_per_s"] is not None
        else f"{o['sent_per_s']:.3g}/s sent, "
    )
    head += f"{o['served_per_s']:.3g}/s served"
    parts = []
    if n_not:
        total = int(planned) if planned else n_not + int(o["sent"])
        parts.append(
            f"{n_not:,} of {total:,} arrivals ({100 * n_not / max(total, 1):.0f}%) never sent"
        )
    if lag_over:
        parts.append(
            f"schedule lag p95 {p95 / 1000.0:.2f} s > {limit_s:g} s (arrivals held back "
            "waiting for a free slot)"
        )
    cap = o["max_in_flight"]
    full = o["cap_full_s"]
    if parts and cap and full:
        each = " in one process" if (o.get("processes") or 1) > 1 else ""
        parts.append(f"max_in_flight {cap} was full for {full:.0f} s{each}")
    kept_up = not n_not and not lag_over
    return {
        "kept_up": kept_up,
        "reason": "" if kept_up else f"{head}: " + "; ".join(parts),
        "evidence": f"{head}; " + _evidence(o, limit_s),
    }


def _evidence(o: Mapping[str, Any], limit_s: float) -> str:
    lag = o["sched_lag_ms"]
    lag_s = (
        "no arrival was sent"
        if lag["p95"] is None
        else f"schedule lag p50 {lag['p50'] / 1000:.2f} s, p95 {lag['p95'] / 1000:.2f} s "
        f"(limit {limit_s:g} s)"
    )
    planned = o["planned"]
    counts = (
        f"{o['sent']:,} of {planned:,} planned arrivals sent"
        if planned is not None
        else f"{o['sent']:,} arrivals sent (the planned count is not in this run folder)"
    )
    if o["not_sent"]:
        counts += f", {o['not_sent']:,} never sent"
    skipped = sum(int(v) for v in o["skipped"].values())
    if skipped:
        why = ", ".join(f"{k}" for k in o["skipped"])
        counts += f", {skipped:,} not yet due when the run stopped ({why})"
    if o.get("unrun"):
        counts += (
            f", {o['unrun']:,} run by no load generator (no worker served their region, or "
            "a worker went missing)"
        )
    return f"{counts}; {lag_s}"


def offered_lines(o: Mapping[str, Any]) -> list[str]:
    """The console's offered-against-served lines."""
    lines = [
        "offered against served (arrivals): " + o["evidence"],
    ]
    cap, full = o.get("max_in_flight"), o.get("cap_full_s")
    if cap:
        each = " (the longest of its processes)" if (o.get("processes") or 1) > 1 else ""
        lines.append(
            f"  max_in_flight {cap}: full for {full or 0:.1f} s while arrivals were due{each}"
        )
    for p in o.get("phases") or []:
        lines.append(
            f"  {p['name']:<24} {p['t0_s']:7.1f}-{p['t1_s']:<7.1f}s  planned "
            f"{p['planned_per_s']:7.2f}/s  sent {p['sent_per_s']:7.2f}/s  "
            f"served {p['served_per_s']:7.2f}/s"
        )
    return lines


def offered_series(
    win: W.Windows,
    cols: Mapping[str, np.ndarray],
    lr: Logical,
    schedule: Mapping[str, Any] | None,
) -> dict[str, np.ndarray]:
    """Per window: planned, sent and served arrivals per second (the report's chart)."""
    rows = arrival_rows(cols)
    t_sent = _f(cols, "t_sent")[rows]
    group = lr.attempt_group[rows] if lr.n else np.zeros(0, dtype=np.int64)
    ok = lr.ok[group] if lr.n else np.zeros(0, dtype=bool)
    end = lr.end_ms[group] if lr.n else np.zeros(0)
    out = {
        "sent_arrivals_rps": W.rates(win, t_sent),
        "served_arrivals_rps": W.rates(win, end, ok),
    }
    hist = (schedule or {}).get("planned_per_bin")
    if hist:
        width = float(schedule["planned_bin_s"])  # type: ignore[index]
        mids_ms = (np.arange(len(hist)) + 0.5) * width * 1000.0
        planned = W.sums(win, mids_ms, np.asarray(hist, dtype=np.float64))
        out["planned_arrivals_rps"] = planned / win.width_s
    return out


def not_applicable() -> str:
    return (
        "closed loop: each user waits for its answer before asking again, so the load "
        "follows the service and cannot outrun it; an open load (load.type: open) tests this"
    )
