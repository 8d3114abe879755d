"""Everything a run report shows, computed once from the records (numpy, vectorised).

`analyse(cols, facts)` returns a `RunAnalysis`: JSON-ready tables for summary.json and
the per-window series the charts draw. Facts the records cannot know (SLOs, fault windows,
the scenario's peak rate, the budget) come in a `RunFacts`, so this module reads records
and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loadkit.analysis import windows as W
from loadkit.analysis.breakdown import breakdown
from loadkit.analysis.costs import cost_breakdown, monthly_projection
from loadkit.analysis.errors import top_errors
from loadkit.analysis.faults import Attempts, FaultWindow, analyse_faults, injected_mask
from loadkit.analysis.offered import offered, offered_series
from loadkit.analysis.requests import Logical, logical
from loadkit.analysis.slo import Limits, good_mask, goodput, limits_from
from loadkit.analysis.summary import summarize
from loadkit.results.schema import OUTCOMES


@dataclass(frozen=True)
class RunFacts:
    """What the scenario and run folder say about the run (all optional)."""

    slo: Any | None = None
    faults: Sequence[FaultWindow] = ()
    peak_requests_per_s: float | None = None  # the scenario's planned peak (uncompressed)
    mean_requests_per_s: float | None = None  # the scenario's planned mean
    budget_usd: float | None = None  # scenario budget.max_usd (per run)
    budget_requests: int | None = None  # scenario budget.max_requests (per run)
    planned_cost_usd: float | None = None  # plan's estimate of this run's cost
    window_s: float | None = None  # chart window; chosen from the span when None
    schedule: Mapping[str, Any] | None = None  # open loop: schedule.json (planned arrivals)
    max_lag_s: float | None = None  # scenario load.max_schedule_lag (None: the default)


@dataclass(frozen=True)
class RunAnalysis:
    summary: dict[str, Any]
    limits: Limits
    windows: W.Windows
    series: dict[str, np.ndarray] = field(repr=False)
    outcome_series: dict[str, np.ndarray] = field(repr=False)
    logical: Logical = field(repr=False)
    attempt_cdf: dict[str, np.ndarray] = field(repr=False)
    attempt_region: np.ndarray = field(repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """summary.json: summarize()'s keys unchanged, the report's additions beside them."""
        return {**self.summary, **self.extra}


def analyse(cols: Mapping[str, np.ndarray], facts: RunFacts | None = None) -> RunAnalysis:
    facts = facts or RunFacts()
    lim = limits_from(facts.slo)
    summary = summarize(cols, slo=facts.slo)
    duration_s = float(summary["duration_s"])
    lr = logical(cols)
    t_sent = np.asarray(cols["t_sent"], dtype=np.float64)
    e2e = np.asarray(cols["e2e_ms"], dtype=np.float64)
    ttft = np.asarray(cols["ttft_ms"], dtype=np.float64)
    outcome = np.asarray(cols["outcome"])
    ok = outcome == "ok"
    end = t_sent + np.nan_to_num(e2e, nan=0.0)
    if lr.n:
        t0 = float(np.nanmin(lr.start_ms))
        # to the last answer, or the last arrival that was never sent (no answer to end at)
        t1 = float(np.nanmax(np.fmax(lr.end_ms, lr.start_ms)))
        if facts.schedule and facts.schedule.get("duration_s"):
            t1 = max(t1, float(facts.schedule["duration_s"]) * 1000.0)
    else:
        t0 = t1 = 0.0
    # about 60 windows, fewer for a small run so a window holds ~10 requests (never < 10)
    target = int(min(60, max(10, lr.n // 10)))
    win = W.make_windows(t0, t1, facts.window_s, target=target)
    open_loop = bool(summary.get("open_loop"))
    lag = np.nan_to_num(np.asarray(cols["sched_lag_ms"], dtype=np.float64), nan=0.0)

    s: dict[str, np.ndarray] = {"t_s": win.mid_s}
    # Latency per window, by the attempt's send time (what the service did then).
    for name, values in (
        ("ttft", np.where(ok, ttft + (lag if open_loop else 0.0), np.nan)),
        ("e2e", np.where(ok, e2e + (lag if open_loop else 0.0), np.nan)),
        ("itl", np.where(ok, np.asarray(cols["itl_mean_ms"], dtype=np.float64), np.nan)),
    ):
        table, n = W.percentiles_over_time(win, t_sent, values)
        for j, p in enumerate((50, 95, 99)):
            s[f"{name}_p{p}"] = table[:, j]
        s[f"{name}_n"] = n.astype(np.float64)
    # Load: requests started per second (offered), in flight (concurrency), done ok per s.
    s["offered_rps"] = W.rates(win, lr.start_ms)
    s["concurrency"] = W.mean_concurrency(win, lr.start_ms, lr.end_ms)
    s["ok_rps"] = W.rates(win, lr.end_ms, lr.ok)
    good = good_mask(lr, lim)
    s["goodput_rps"] = W.rates(win, lr.end_ms, good)
    # Failures: logical error rate by start time; failed attempts injected vs organic.
    n_start = W.counts(win, lr.start_ms)
    n_fail = W.counts(win, lr.start_ms, ~lr.ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        s["error_rate"] = np.where(n_start > 0, n_fail / n_start, np.nan)
    n_att = W.counts(win, t_sent)
    injected, inferred = injected_mask(cols, tuple(facts.faults))
    s["attempts_per_s"] = n_att / win.width_s
    # Who served: attempts per second by the upstream that answered (behind a gateway)
    served_by = np.asarray(cols["served_by"]).astype(str)
    upstreams = sorted(set(served_by.tolist()) - {""})
    for name in upstreams:
        s[f"served_by:{name}"] = W.rates(win, t_sent, served_by == name)
    if upstreams:
        s["served_by:"] = W.rates(win, t_sent, served_by == "")
    s["failed_injected_per_s"] = W.rates(win, t_sent, injected)
    s["failed_organic_per_s"] = W.rates(win, t_sent, ~ok & ~injected)
    outcomes: dict[str, np.ndarray] = {}
    for o in OUTCOMES:
        if o == "ok":
            continue
        m = outcome == o
        if m.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                outcomes[o] = np.where(n_att > 0, W.counts(win, t_sent, m) / n_att, np.nan)
    # Cost and tokens per window: spend of requests started then / those that succeeded.
    cost_w = W.sums(win, lr.start_ms, lr.cost_usd)
    ok_w = W.counts(win, lr.start_ms, lr.ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        s["cost_per_ok_usd"] = np.where(ok_w > 0, cost_w / ok_w, np.nan)
    s["cost_usd_per_s"] = cost_w / win.width_s
    comp = np.asarray(cols["completion_tokens"], dtype=np.float64)
    s["output_tokens_per_s"] = W.sums(win, end, np.where(ok, comp, 0.0)) / win.width_s
    if open_loop:
        table, _ = W.percentiles_over_time(
            win, t_sent, np.asarray(cols["sched_lag_ms"], dtype=np.float64)
        )
        for j, p in enumerate((50, 95, 99)):
            s[f"lag_p{p}"] = table[:, j]
        s.update(offered_series(win, cols, lr, facts.schedule))

    costs = cost_breakdown(cols, lr)
    run_end = float(np.nanmax(end)) if end.size else 0.0
    faults = analyse_faults(
        lr,
        Attempts.of(cols, injected),
        facts.faults,
        lim,
        run_end,
        bin_s=max(1.0, win.width_s / 2),
    )
    extra: dict[str, Any] = {
        "goodput": goodput(lr, lim, duration_s),
        "failover": {
            "requests": int(lr.failover.sum()),
            "ok": int((lr.failover & lr.ok).sum()),
        },
        "failures": {
            "failed_attempts": int((~ok).sum()),
            "injected": int(injected.sum()),
            "injected_untagged": inferred,
            "organic": int((~ok & ~injected).sum()),
        },
        "cost": costs,
        "breakdown": {
            "region": breakdown(lr, "region", lim, duration_s),
            "workload": breakdown(lr, "workload", lim, duration_s),
        },
        "faults": faults,
        "upstreams": upstreams,
        "errors": top_errors(cols),
        "window_s": win.width_s,
    }
    if open_loop:
        extra["offered"] = offered(cols, lr, facts.schedule, facts.max_lag_s)
    proj = monthly_projection(
        costs["per_request_usd"],
        summary["requests_per_s"],
        facts.peak_requests_per_s,
        facts.mean_requests_per_s,
    )
    if proj is not None:
        extra["cost"]["monthly_projection"] = proj
    if facts.budget_usd is not None:
        extra["cost"]["budget_usd"] = facts.budget_usd
    if facts.budget_requests is not None:
        extra["cost"]["budget_requests"] = facts.budget_requests
    if facts.planned_cost_usd is not None:
        extra["cost"]["planned_run_cost_usd"] = round(facts.planned_cost_usd, 6)
    cdf = {
        "ttft": np.where(ok, ttft, np.nan),
        "e2e": np.where(ok, e2e, np.nan),
        "itl": np.where(ok, np.asarray(cols["itl_mean_ms"], dtype=np.float64), np.nan),
    }
    from loadkit.analysis.verdict import verdict

    extra["verdict"] = verdict(summary, extra, lim)
    return RunAnalysis(
        summary, lim, win, s, outcomes, lr, cdf, np.asarray(cols["region"]).astype(str), extra
    )
