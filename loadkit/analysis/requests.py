"""Logical requests: the attempts of one `request_id` folded into what the user experienced.

- start: the first attempt's intended send time (open loop) else its send time;
- outcome: the last attempt's; ok when it is `ok`;
- latency (E2E the user felt) spans from start to the end of the last attempt;
- TTFT the user felt: from start to the first token of the last attempt (ok only);
- region/workload: the first attempt's (the user's home region, before any failover);
- failover: attempts went to more than one region; faulted: some attempt carried a fault tag;
- cost: every attempt's, added up; NaN when no attempt had a price (unknown, not $0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Logical:
    """Column arrays, one entry per logical request, sorted by request_id."""

    start_ms: np.ndarray
    end_ms: np.ndarray
    outcome: np.ndarray
    ok: np.ndarray
    latency_ms: np.ndarray
    ttft_ms: np.ndarray
    itl_mean_ms: np.ndarray
    attempts: np.ndarray
    cost_usd: np.ndarray
    region: np.ndarray
    workload: np.ndarray
    failover: np.ndarray
    faulted: np.ndarray
    # attempt -> logical request index, for mapping per-attempt facts onto requests
    attempt_group: np.ndarray

    @property
    def n(self) -> int:
        return int(self.ok.size)


def _f(cols: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(cols[name], dtype=np.float64)


def logical(cols: Mapping[str, np.ndarray]) -> Logical:
    """Fold attempts into logical requests (one sort; vectorised)."""
    rid = np.asarray(cols["request_id"])
    n = rid.size
    attempt = np.asarray(cols["attempt"], dtype=np.int64)
    t_sent = _f(cols, "t_sent")
    t_int = _f(cols, "t_intended")
    e2e = np.nan_to_num(_f(cols, "e2e_ms"), nan=0.0)
    start = np.where(np.isfinite(t_int), t_int, t_sent)
    end = t_sent + e2e
    if n == 0:
        z = np.zeros(0)
        s = np.zeros(0, dtype=object)
        return Logical(
            z,
            z,
            s,
            z.astype(bool),
            z,
            z,
            z,
            z,
            z,
            s,
            s,
            z.astype(bool),
            z.astype(bool),
            np.zeros(0, dtype=np.int64),
        )
    codes = np.unique(rid, return_inverse=True)[1]
    order = np.lexsort((attempt, codes))
    cs = codes[order]
    first = np.ones(n, dtype=bool)
    first[1:] = cs[1:] != cs[:-1]
    starts = np.flatnonzero(first)
    last = np.append(starts[1:], n) - 1
    group = np.empty(n, dtype=np.int64)
    group[order] = np.cumsum(first) - 1
    outcome = np.asarray(cols["outcome"])[order]
    fin = order[last]
    out_final = outcome[last]
    ok = out_final == "ok"
    g_start = np.minimum.reduceat(start[order], starts)
    g_end = np.maximum.reduceat(end[order], starts)
    ttft_last = _f(cols, "ttft_ms")[fin]
    user_ttft = np.where(ok, t_sent[fin] + ttft_last - g_start, np.nan)
    raw_cost = _f(cols, "cost_usd")[order]
    cost = np.add.reduceat(np.nan_to_num(raw_cost, nan=0.0), starts)
    # no attempt of the request had a price: its cost is unknown (NaN), not $0
    cost = np.where(np.logical_or.reduceat(np.isfinite(raw_cost), starts), cost, np.nan)
    region = np.asarray(cols["region"])[order]
    reg_first = region[starts]
    # failover: some attempt's region differs from the first attempt's
    differs = region != np.repeat(reg_first, np.diff(np.append(starts, n)))
    failover = np.logical_or.reduceat(differs, starts)
    fault = np.asarray(cols["fault"])[order]
    faulted = np.logical_or.reduceat(fault != "", starts)
    return Logical(
        start_ms=g_start,
        end_ms=g_end,
        outcome=out_final,
        ok=ok,
        latency_ms=np.where(ok, g_end - g_start, np.nan),
        ttft_ms=user_ttft,
        itl_mean_ms=np.where(ok, _f(cols, "itl_mean_ms")[fin], np.nan),
        attempts=(last - starts + 1).astype(np.int64),
        cost_usd=cost,
        region=reg_first,
        workload=np.asarray(cols["workload"])[order][starts],
        failover=failover,
        faulted=faulted,
        attempt_group=group,
    )


def started_between(cols: Mapping[str, np.ndarray], t0_ms: float, t1_ms: float) -> np.ndarray:
    """Attempt mask: every attempt of each logical request that started in [t0_ms, t1_ms).

    A window judges requests, not attempts: a retry that lands after the window's end
    still decides its request's outcome, and never stands alone as a failed request.
    """
    lr = logical(cols)
    keep = (lr.start_ms >= t0_ms) & (lr.start_ms < t1_ms)
    return keep[lr.attempt_group]
