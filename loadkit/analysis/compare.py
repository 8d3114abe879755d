"""Compare runs: each run's samples against the baseline's, row by row, and compare.json.

The statistics (and why these) are in compare_stats, the sentences in compare_findings; their
public names are imported here too, so `analysis.compare` stays the one place to import from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loadkit.analysis.compare_findings import (
    LATENCY_METRICS,
    MIN_EFFECT,
    OTHER_METRICS,
    finding,
    findings_text,
    metric_label,
    workload_findings,
)
from loadkit.analysis.compare_stats import (
    ALPHA,
    CONFIDENCE,
    N_BOOT,
    Interval,
    TestResult,
    bootstrap_percentile,
    cost_per_ok_ci,
    cost_ratio_ci,
    holm,
    mann_whitney_u,
    percentile_ci,
    percentile_ratio_ci,
    rate_ratio_ci,
    rounded,
    two_proportion_z,
)
from loadkit.analysis.requests import logical
from loadkit.analysis.slo import Limits
from loadkit.analysis.stats import percentiles

__all__ = [
    "ALPHA",
    "COMPARE_PCTS",
    "CONFIDENCE",
    "LATENCY_METRICS",
    "MIN_EFFECT",
    "N_BOOT",
    "OTHER_METRICS",
    "Comparison",
    "Interval",
    "Row",
    "RunSample",
    "TestResult",
    "WorkloadRow",
    "bootstrap_percentile",
    "compare_runs",
    "comparison_json",
    "cost_per_ok_ci",
    "cost_ratio_ci",
    "finding",
    "findings_text",
    "holm",
    "mann_whitney_u",
    "metric_label",
    "percentile_ci",
    "percentile_ratio_ci",
    "rate_ratio_ci",
    "regressions",
    "run_sample",
    "two_proportion_z",
    "workload_findings",
    "workload_rows",
]

COMPARE_PCTS: tuple[float, ...] = (50.0, 95.0, 99.0)


# -- one run's comparable samples ---------------------------------------------------------


@dataclass(frozen=True)
class RunSample:
    """What a comparison needs of one run, taken from its records."""

    label: str
    path: str
    latency: Mapping[str, np.ndarray]  # metric -> values of successful requests (ms)
    requests: int  # logical requests
    failed: int  # logical requests whose last attempt failed
    outcomes: Mapping[str, int]  # attempt outcome -> count
    attempts: int
    cost_req: np.ndarray  # cost of each logical request (USD), every attempt included
    ok_req: np.ndarray  # whether each logical request succeeded
    cost_total: float
    duration_s: float
    good: int | None = None  # requests that succeeded and met every per-request SLO limit
    # workload -> {"ttft_ms": values, "e2e_ms": values, "requests": count}
    by_workload: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def good_share(self) -> float:
        return self.good / self.requests if self.good is not None and self.requests else math.nan

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else math.nan

    @property
    def cost_per_ok_request(self) -> float:
        ok = self.requests - self.failed
        return self.cost_total / ok if ok else math.nan

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else math.nan


def run_sample(
    cols: Mapping[str, np.ndarray],
    label: str,
    path: str = "",
    notes: Sequence[str] = (),
    limits: Limits | None = None,
) -> RunSample:
    """Comparable samples of one run, per logical request (what the user felt).

    Latency of the requests that succeeded: TTFT and E2E from the first attempt's intended
    (else sent) time, so retries, backoff and open-loop schedule lag count; ITL is the
    final attempt's mean gap. `limits` (per-request SLO limits) make the good share: the
    requests that succeeded and met every limit.
    """
    from loadkit.analysis.slo import good_mask
    from loadkit.analysis.summary import active_span_s

    lr = logical(cols)
    ok = np.asarray(lr.ok, dtype=bool)
    latency = {
        "ttft_ms": np.asarray(lr.ttft_ms, dtype=np.float64)[ok],
        "itl_ms": np.asarray(lr.itl_mean_ms, dtype=np.float64)[ok],
        "e2e_ms": np.asarray(lr.latency_ms, dtype=np.float64)[ok],
    }
    workload = np.asarray(lr.workload).astype(str)
    by_workload = {
        str(w): {
            "ttft_ms": latency["ttft_ms"][workload[ok] == w],
            "e2e_ms": latency["e2e_ms"][workload[ok] == w],
            "requests": int(np.count_nonzero(workload == w)),
        }
        for w in np.unique(workload)
    }
    outcome = np.asarray(cols["outcome"]).astype(str)
    names, counts = np.unique(outcome, return_counts=True)
    cost = np.nan_to_num(np.asarray(cols["cost_usd"], dtype=np.float64), nan=0.0)
    good = None
    if limits is not None and limits.any:
        good = int(np.count_nonzero(good_mask(lr, limits)))
    return RunSample(
        label=label,
        path=path,
        latency=latency,
        requests=lr.n,
        failed=int(np.count_nonzero(~ok)),
        outcomes={str(k): int(v) for k, v in zip(names, counts, strict=True)},
        attempts=int(outcome.size),
        cost_req=np.nan_to_num(np.asarray(lr.cost_usd, dtype=np.float64), nan=0.0),
        ok_req=ok,
        cost_total=float(cost.sum()),
        duration_s=active_span_s(cols),
        good=good,
        by_workload=by_workload,
        notes=tuple(notes),
    )


# -- the comparison -----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One compared figure of run `label` against the baseline run."""

    metric: str  # e.g. "ttft_ms.p95", "error_rate", "cost_per_ok_request"
    label: str  # the run compared with the baseline
    baseline_value: float
    value: float
    ratio: Interval  # value / baseline_value with its CI
    test: TestResult
    p_adjusted: float = math.nan
    significant: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "run": self.label,
            "baseline": rounded(self.baseline_value, 9),
            "value": rounded(self.value, 9),
            "delta": rounded(self.value - self.baseline_value, 9),
            "ratio": self.ratio.as_dict(4),
            "test": self.test.name,
            "p_value": rounded(self.test.p_value, 6),
            "p_adjusted": rounded(self.p_adjusted, 6),
            "significant": self.significant,
        }


@dataclass(frozen=True)
class Comparison:
    """Every run against the first (the baseline): rows, per-run CIs and findings."""

    runs: tuple[RunSample, ...]
    rows: tuple[Row, ...]
    percentile_cis: Mapping[str, Mapping[str, Mapping[str, Interval]]]  # run -> metric -> pNN
    findings: tuple[str, ...] = field(default=())
    confidence: float = CONFIDENCE
    subset: str = ""  # e.g. "workload chat": only those records were compared
    workloads: tuple[WorkloadRow, ...] = ()

    @property
    def baseline(self) -> RunSample:
        return self.runs[0]


def compare_runs(
    runs: Sequence[RunSample],
    seed: int = 0,
    n_boot: int = N_BOOT,
    confidence: float = CONFIDENCE,
    alpha: float = ALPHA,
    subset: str = "",
) -> Comparison:
    """Compare each run with the first: latency percentiles, error rate, cost per request."""
    if len(runs) < 2:
        raise ValueError("a comparison needs at least two runs")
    rng = np.random.default_rng(seed)
    base = runs[0]
    cis: dict[str, dict[str, dict[str, Interval]]] = {}
    for run in runs:
        cis[run.label] = {
            metric: {
                f"p{p:g}": percentile_ci(run.latency[metric], p, rng, n_boot, confidence)
                for p in COMPARE_PCTS
            }
            for metric, _ in LATENCY_METRICS
        }
    rows: list[Row] = []
    for run in runs[1:]:
        for metric, _ in LATENCY_METRICS:
            a, b = base.latency[metric], run.latency[metric]
            test = mann_whitney_u(a, b)
            for p in COMPARE_PCTS:
                key = f"p{p:g}"
                ratio = percentile_ratio_ci(a, b, p, rng, n_boot, confidence)
                rows.append(
                    Row(
                        metric=f"{metric}.{key}",
                        label=run.label,
                        baseline_value=cis[base.label][metric][key].value,
                        value=cis[run.label][metric][key].value,
                        ratio=ratio,
                        test=test,
                    )
                )
        rows.append(
            Row(
                metric="error_rate",
                label=run.label,
                baseline_value=base.error_rate,
                value=run.error_rate,
                ratio=rate_ratio_ci(base.failed, base.requests, run.failed, run.requests),
                test=two_proportion_z(base.failed, base.requests, run.failed, run.requests),
            )
        )
        if base.good is not None and run.good is not None:
            # Requests that failed or missed a per-request SLO limit (the complement of
            # goodput's good requests): higher is worse, like every other row.
            bad_a, bad_b = base.requests - base.good, run.requests - run.good
            rows.append(
                Row(
                    metric="slo_miss_rate",
                    label=run.label,
                    baseline_value=1.0 - base.good_share,
                    value=1.0 - run.good_share,
                    ratio=rate_ratio_ci(bad_a, base.requests, bad_b, run.requests),
                    test=two_proportion_z(bad_a, base.requests, bad_b, run.requests),
                )
            )
        cost_ratio, cost_test = cost_ratio_ci(
            base.cost_req, base.ok_req, run.cost_req, run.ok_req, confidence
        )
        rows.append(
            Row(
                metric="cost_per_ok_request",
                label=run.label,
                baseline_value=base.cost_per_ok_request,
                value=run.cost_per_ok_request,
                ratio=cost_ratio,
                test=cost_test,
            )
        )
    rows = _adjust(rows, alpha)
    wl = tuple(workload_rows(runs, seed, n_boot))
    findings = tuple(findings_text(runs, rows, confidence, wl))
    return Comparison(tuple(runs), tuple(rows), cis, findings, confidence, subset, wl)


def _adjust(rows: list[Row], alpha: float) -> list[Row]:
    """Holm-adjust over the distinct tests (a run's latency rows of one metric share one)."""
    keys: dict[tuple[str, str, str], float] = {}
    for row in rows:
        keys.setdefault(_test_key(row), row.test.p_value)
    names = list(keys)
    adj = dict(zip(names, holm([keys[k] for k in names]), strict=True))
    out = []
    for row in rows:
        p_adj = float(adj[_test_key(row)])
        # A percentile row is called significant when the distributions differ AND its own
        # ratio CI excludes 1: the shift must show at that percentile, not only elsewhere.
        ci_excludes_one = (
            math.isfinite(row.ratio.low)
            and math.isfinite(row.ratio.high)
            and (row.ratio.low > 1.0 or row.ratio.high < 1.0)
        )
        is_latency = row.metric.split(".")[0] in dict(LATENCY_METRICS)
        sig = bool(math.isfinite(p_adj) and p_adj < alpha and (ci_excludes_one or not is_latency))
        out.append(
            Row(
                row.metric,
                row.label,
                row.baseline_value,
                row.value,
                row.ratio,
                row.test,
                p_adj,
                sig,
            )
        )
    return out


def _test_key(row: Row) -> tuple[str, str, str]:
    return (row.label, row.metric.split(".")[0], row.test.name)


@dataclass(frozen=True)
class WorkloadRow:
    """One workload's p95 in a run against the baseline: where a mix change comes from."""

    workload: str
    label: str
    requests: int
    baseline_requests: int
    share: float  # of the run's requests
    baseline_share: float
    ttft_p95: Interval  # ratio to the baseline (NaN when the baseline lacks the workload)
    e2e_p95: Interval
    ttft_p95_ms: float
    e2e_p95_ms: float
    baseline_ttft_p95_ms: float = math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "run": self.label,
            "requests": self.requests,
            "baseline_requests": self.baseline_requests,
            "share": rounded(self.share, 4),
            "baseline_share": rounded(self.baseline_share, 4),
            "ttft_p95_ms": rounded(self.ttft_p95_ms, 3),
            "baseline_ttft_p95_ms": rounded(self.baseline_ttft_p95_ms, 3),
            "e2e_p95_ms": rounded(self.e2e_p95_ms, 3),
            "ttft_p95_ratio": self.ttft_p95.as_dict(4),
            "e2e_p95_ratio": self.e2e_p95.as_dict(4),
        }


def workload_rows(
    runs: Sequence[RunSample], seed: int = 0, n_boot: int = N_BOOT
) -> list[WorkloadRow]:
    """Per workload, each run's p95 TTFT and E2E against the baseline's same workload."""
    rng = np.random.default_rng(seed + 1)
    base = runs[0]
    out = []
    for run in runs[1:]:
        for w in sorted(run.by_workload):
            mine = run.by_workload[w]
            theirs = base.by_workload.get(w)
            p95 = {
                m: float(percentiles(mine[m], (95.0,))[0]) if len(mine[m]) else math.nan
                for m in ("ttft_ms", "e2e_ms")
            }
            nan = Interval(math.nan, math.nan, math.nan)
            ratios = {
                m: percentile_ratio_ci(theirs[m], mine[m], 95.0, rng, n_boot)
                if theirs is not None
                else nan
                for m in ("ttft_ms", "e2e_ms")
            }
            out.append(
                WorkloadRow(
                    workload=w,
                    label=run.label,
                    requests=int(mine["requests"]),
                    baseline_requests=int(theirs["requests"]) if theirs else 0,
                    share=mine["requests"] / run.requests if run.requests else math.nan,
                    baseline_share=(theirs["requests"] / base.requests) if theirs else 0.0,
                    ttft_p95=ratios["ttft_ms"],
                    e2e_p95=ratios["e2e_ms"],
                    ttft_p95_ms=p95["ttft_ms"],
                    e2e_p95_ms=p95["e2e_ms"],
                    baseline_ttft_p95_ms=(
                        float(percentiles(theirs["ttft_ms"], (95.0,))[0])
                        if theirs is not None and len(theirs["ttft_ms"])
                        else math.nan
                    ),
                )
            )
    return out


def regressions(cmp: Comparison, factor: float) -> list[Row]:
    """Rows that got significantly worse by more than `factor` (a CI gate).

    p95 latencies and cost per successful request: a significant ratio above `factor`;
    error rate and requests missing the SLO: a significant rise and a ratio above `factor`
    (or any significant rise from zero).
    """
    out = []
    for row in cmp.rows:
        if not row.significant:
            continue
        gate = row.metric.endswith(".p95") or row.metric in OTHER_METRICS
        if not gate or not row.value > row.baseline_value:
            continue
        r = row.ratio.value
        if (math.isfinite(r) and r > factor) or (row.baseline_value == 0 and row.value > 0):
            out.append(row)
    return out


def comparison_json(cmp: Comparison) -> dict[str, Any]:
    """compare.json: runs, per-run percentiles with CIs, the delta table, findings."""
    return {
        "confidence": cmp.confidence,
        "baseline": cmp.baseline.label,
        "subset": cmp.subset or None,
        "method": {
            "percentile_ci": "bootstrap (order-statistic Beta draws), percentile interval",
            "latency_test": "Mann-Whitney U, two-sided, normal approximation",
            "error_rate_test": "two-proportion z-test; ratio CI by the log method",
            "cost_test": "z-test on cost per successful request (ratio estimator, delta "
            "method); ratio CI on the log scale",
            "multiple_testing": f"Holm step-down, alpha {ALPHA:g}",
        },
        "runs": [
            {
                "label": r.label,
                "path": r.path,
                "requests": r.requests,
                "failed_requests": r.failed,
                "attempts": r.attempts,
                "error_rate": rounded(r.error_rate, 6),
                "good_requests": r.good,
                "good_share": rounded(r.good_share, 6),
                "outcomes": dict(r.outcomes),
                "requests_per_s": rounded(r.requests_per_s, 4),
                "duration_s": rounded(r.duration_s, 3),
                "cost_usd_total": rounded(r.cost_total, 9),
                "cost_usd_per_ok_request": rounded(r.cost_per_ok_request, 10),
                "latency_ms": {
                    metric: {k: iv.as_dict(3) for k, iv in by_p.items()}
                    | {"n": int(np.isfinite(r.latency[metric]).sum())}
                    for metric, by_p in cmp.percentile_cis[r.label].items()
                },
                "notes": list(r.notes),
            }
            for r in cmp.runs
        ],
        "deltas": [row.as_dict() for row in cmp.rows],
        "workloads": [w.as_dict() for w in cmp.workloads],
        "findings": list(cmp.findings),
    }
