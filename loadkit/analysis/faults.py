"""Fault windows and what they did: impact inside each window and recovery time after it.

A window's attempts are those in flight at any moment of it (sent before its end, not over
before its start) and, for a regional fault, sent to its region: a stream cut the moment an
outage began belongs to the outage although it was sent before. Its requests are the logical
requests those attempts belong to. The summary's `faults[]` and the drill's
`chaos.windows[]` take both from `exposed` below, so they count the same set.

Recovery time (issue 6): from the end of a fault window until both the error rate and the
p95 TTFT of logical requests (by start time) are back within the SLO. Checked in short bins
after the window; the first bin that is within both limits and whose next non-empty bin is
too (a single good bin is not recovery) marks the recovery. No SLO on a metric: it is judged
against the run's pre-fault level of that metric (error rate + 1 point, p95 x 1.5).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadkit.analysis.requests import Logical
from loadkit.analysis.slo import Limits
from loadkit.analysis.stats import percentiles


@dataclass(frozen=True)
class FaultWindow:
    fault_id: str
    kind: str
    start_ms: float
    end_ms: float  # +inf: still active when the run ended
    region: str = ""
    upstream: str = ""  # a fault behind the target: the upstream it acts on


def from_journal(events: Iterable[Any]) -> list[FaultWindow]:
    """Windows from `loadkit.results.faults_schema` events (start -> end/clear)."""
    from loadkit.results.faults_schema import fault_windows

    events = list(events)
    region = {e.fault_id: e.region for e in events if e.event == "start"}
    upstream = {e.fault_id: e.upstream for e in events if e.event == "start"}
    return [
        FaultWindow(fid, kind, t0, t1, region.get(fid, ""), upstream.get(fid, ""))
        for fid, kind, t0, t1 in fault_windows(events)
    ]


def exposed(
    t_sent: np.ndarray, e2e_ms: np.ndarray, region: np.ndarray, w: FaultWindow
) -> np.ndarray:
    """Attempt mask: in flight at some moment of the window (and in its region, if any).

    A fault behind the target (an upstream) selects no region: users of every region reach
    it through the gateway, which decides, not loadkit, which requests it sends there.
    """
    end = t_sent + np.nan_to_num(e2e_ms, nan=0.0)
    m = (t_sent < w.end_ms) & (end >= w.start_ms)
    if w.region and not w.upstream:
        m &= region == w.region
    return m


@dataclass(frozen=True)
class Attempts:
    """The per-attempt columns fault analysis needs."""

    t_sent: np.ndarray
    e2e_ms: np.ndarray
    region: np.ndarray
    ok: np.ndarray
    injected: np.ndarray
    ttft_ms: np.ndarray
    served_by: np.ndarray

    @classmethod
    def of(cls, cols: Mapping[str, np.ndarray], injected: np.ndarray) -> Attempts:
        return cls(
            t_sent=np.asarray(cols["t_sent"], dtype=np.float64),
            e2e_ms=np.asarray(cols["e2e_ms"], dtype=np.float64),
            region=np.asarray(cols["region"]),
            ok=np.asarray(cols["outcome"]) == "ok",
            injected=injected,
            ttft_ms=np.asarray(cols["ttft_ms"], dtype=np.float64),
            served_by=np.asarray(cols["served_by"]).astype(str),
        )

    def upstreams(self) -> list[str]:
        """The upstreams that served something, by name."""
        return sorted(set(self.served_by.tolist()) - {""})


# Faults that act on the connection leave no response to carry the fault tag: a failure
# in their window and region is theirs although its record has no tag.
UNTAGGED_KINDS = frozenset({"region_outage", "refuse", "reset", "hang"})


def injected_mask(
    cols: Mapping[str, np.ndarray], windows: Sequence[FaultWindow]
) -> tuple[np.ndarray, int]:
    """(failed attempts the chaos layer caused, how many of them were inferred, not tagged).

    Tagged failures are injected; so is an untagged failure in flight while a
    connection-level fault (`UNTAGGED_KINDS`) was active for its region.
    """
    fault = np.asarray(cols["fault"])
    ok = np.asarray(cols["outcome"]) == "ok"
    t_sent = np.asarray(cols["t_sent"], dtype=np.float64)
    e2e = np.asarray(cols["e2e_ms"], dtype=np.float64)
    region = np.asarray(cols["region"])
    tagged = ~ok & (fault != "")
    inferred = np.zeros(ok.size, dtype=bool)
    for w in windows:
        if w.kind in UNTAGGED_KINDS:
            inferred |= ~ok & (fault == "") & exposed(t_sent, e2e, region, w)
    return tagged | inferred, int(inferred.sum())


def _bin_stats(
    start: np.ndarray, ok: np.ndarray, ttft: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, error rate, p95 TTFT) of requests starting in each [edge_i, edge_i+1)."""
    from loadkit.analysis.stats import grouped_percentiles

    k = np.searchsorted(edges, start, side="right") - 1
    nb = edges.size - 1
    k = np.where((k >= 0) & (k < nb), k, -1)
    sel = k >= 0
    n = np.bincount(k[sel], minlength=nb)[:nb].astype(np.float64)
    bad = np.bincount(k[sel & ~ok], minlength=nb)[:nb].astype(np.float64)
    p95, _ = grouped_percentiles(k, np.where(ok, ttft, np.nan), nb, (95.0,))
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.where(n > 0, bad / n, np.nan)
    return n, err, p95[:, 0]


def _limits(lr: Logical, lim: Limits, first_fault_ms: float) -> tuple[float, float, str]:
    pre = lr.start_ms < first_fault_ms
    err_lim = lim.error_rate
    p95_lim = lim.ttft_p95_ms
    basis = "SLO"
    if err_lim is None or p95_lim is None:
        basis = "SLO where set, else the pre-fault level"
        base_err = float(1 - lr.ok[pre].mean()) if pre.any() else 0.0
        base_p95 = (
            float(percentiles(lr.ttft_ms[pre & lr.ok], (95.0,))[0]) if pre.any() else math.nan
        )
        if err_lim is None:
            err_lim = base_err + 0.01
        if p95_lim is None:
            p95_lim = base_p95 * 1.5 if math.isfinite(base_p95) else math.inf
    return float(err_lim), float(p95_lim), basis


def analyse_faults(
    lr: Logical,
    att: Attempts,
    windows: Sequence[FaultWindow],
    lim: Limits,
    run_end_ms: float,
    bin_s: float,
) -> list[dict[str, Any]]:
    """Per fault window: impact (errors injected/organic, failover) and recovery time."""
    if not windows:
        return []
    order = np.argsort(lr.start_ms, kind="stable")
    start = lr.start_ms[order]
    ok = lr.ok[order]
    ttft = lr.ttft_ms[order]
    err_lim, p95_lim, basis = _limits(lr, lim, min(w.start_ms for w in windows))
    bin_ms = max(bin_s, 0.5) * 1000.0
    out: list[dict[str, Any]] = []
    starts_sorted = sorted(w.start_ms for w in windows)
    upstreams = att.upstreams()
    by_upstream = {}
    for name in upstreams:
        sel = np.flatnonzero(att.served_by == name)
        sel = sel[np.argsort(att.t_sent[sel], kind="stable")]
        by_upstream[name] = (att.t_sent[sel], att.ok[sel], att.ttft_ms[sel])
    for w in windows:
        end = w.end_ms if math.isfinite(w.end_ms) else run_end_ms
        att_in = exposed(att.t_sent, att.e2e_ms, att.region, w)
        inside = np.zeros(lr.n, dtype=bool)
        inside[lr.attempt_group[att_in]] = True
        n_in = int(inside.sum())
        fails_in = att_in & ~att.ok
        injected = int((fails_in & att.injected).sum())
        fo = inside & lr.failover
        item: dict[str, Any] = {
            "fault_id": w.fault_id,
            "kind": w.kind,
            "region": w.region,
            "upstream": w.upstream,
            "start_s": round(w.start_ms / 1000.0, 3),
            "end_s": round(end / 1000.0, 3),
            "active_at_end": not math.isfinite(w.end_ms),
            "requests": n_in,
            "attempts": int(att_in.sum()),
            "error_rate": round(float(1 - lr.ok[inside].mean()), 6) if n_in else None,
            "ttft_p95_ms": _r(percentiles(lr.ttft_ms[inside & lr.ok], (95.0,))[0]),
            "failed_attempts_injected": injected,
            "failed_attempts_organic": int(fails_in.sum()) - injected,
            "failover_requests": int(fo.sum()),
            "failover_ok_share": round(float(lr.ok[fo].mean()), 6) if fo.any() else None,
            "recovery_basis": basis,
            "recovery_limits": {"error_rate": round(err_lim, 6), "ttft_p95_ms": _r(p95_lim)},
        }
        item.update(
            _recovery(start, ok, ttft, w, end, run_end_ms, bin_ms, err_lim, p95_lim, starts_sorted)
        )
        if upstreams:
            # per upstream: the first sustained interval in which it served again, within
            # the limits (a gateway that has not yet sent traffic back has not recovered)
            item["recovery_by_upstream"] = {
                name: _recovery(
                    *by_upstream[name], w, end, run_end_ms, bin_ms, err_lim, p95_lim, starts_sorted
                )
                for name in upstreams
            }
        out.append(item)
    return out


def _recovery(
    start: np.ndarray,
    ok: np.ndarray,
    ttft: np.ndarray,
    w: FaultWindow,
    end: float,
    run_end_ms: float,
    bin_ms: float,
    err_lim: float,
    p95_lim: float,
    fault_starts: Sequence[float],
) -> dict[str, Any]:
    if not math.isfinite(w.end_ms):
        return {
            "recovered": False,
            "recovery_s": None,
            "recovery_note": "fault still active when the run ended",
        }
    horizon = run_end_ms
    n_bins = math.ceil(max(horizon - end, 0.0) / bin_ms)
    if n_bins == 0:
        return {
            "recovered": False,
            "recovery_s": None,
            "recovery_note": "the run ended with the fault window",
        }
    edges = end + np.arange(n_bins + 1) * bin_ms
    n, err, p95 = _bin_stats(start, ok, ttft, edges)
    good = (n > 0) & (err <= err_lim) & ~(p95 > p95_lim)
    nonempty = np.flatnonzero(n > 0)
    for pos, b in enumerate(nonempty):
        if not good[b]:
            continue
        nxt = nonempty[pos + 1] if pos + 1 < nonempty.size else None
        if nxt is None or good[nxt]:
            t = float(edges[b] - end) / 1000.0
            later = [s for s in fault_starts if s > end and s <= edges[b]]
            note = "within limits again" + (" (another fault started before that)" if later else "")
            return {"recovered": True, "recovery_s": round(t, 3), "recovery_note": note}
    return {
        "recovered": False,
        "recovery_s": None,
        "recovery_note": f"not back within limits in the {(horizon - end) / 1000:.0f} s "
        "that followed",
    }


def _r(v: float) -> float | None:
    return round(float(v), 3) if v is not None and math.isfinite(v) else None
