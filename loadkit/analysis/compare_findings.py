"""Plain-language findings of a comparison: one sentence per figure that differs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from loadkit.analysis.compare_stats import ALPHA, Interval
from loadkit.fmt import fmt_ms

if TYPE_CHECKING:
    from loadkit.analysis.compare import Row, RunSample, WorkloadRow

# A latency or cost difference smaller than this is reported as practically the same, even
# when a large run makes it statistically significant.
MIN_EFFECT = 0.10
# Metrics compared between runs: key -> (label for people, record column or derived name).
LATENCY_METRICS: tuple[tuple[str, str], ...] = (
    ("ttft_ms", "TTFT"),
    ("itl_ms", "ITL"),
    ("e2e_ms", "E2E latency"),
)
OTHER_METRICS: dict[str, str] = {
    "error_rate": "error rate",
    "slo_miss_rate": "requests missing the SLO",
    "cost_per_ok_request": "cost per successful request",
}


def metric_label(metric: str) -> str:
    """'ttft_ms.p95' -> 'p95 TTFT'; 'error_rate' -> 'error rate'."""
    names = dict(LATENCY_METRICS)
    base, _, pct = metric.partition(".")
    if base in names:
        return f"{pct} {names[base]}"
    return OTHER_METRICS.get(metric, metric)


def _times(x: float) -> str:
    return f"{x:.2f}x" if x < 1.995 else f"{x:.1f}x" if x < 9.95 else f"{x:.0f}x"


def _fmt_ratio_ci(iv: Interval, confidence: float) -> str:
    if not (math.isfinite(iv.low) and math.isfinite(iv.high)):
        return ""
    return f", {confidence:.0%} CI {_times(iv.low)}-{_times(iv.high)}"


def finding(row: Row, baseline_label: str, confidence: float) -> str:
    """One sentence: 'p95 TTFT is 4.1x higher in production than in pilot, 95% CI 3.6-4.7x'."""
    what = metric_label(row.metric)
    r = row.ratio.value
    if row.metric in ("error_rate", "slo_miss_rate"):
        a, b = 100 * row.baseline_value, 100 * row.value
        lead = (
            "The error rate is"
            if row.metric == "error_rate"
            else "The share of requests that failed or missed an SLO is"
        )
        return (
            f"{lead} {b:.2f}% in {row.label} against {a:.2f}% in {baseline_label}"
            + (f" ({_times(r)}{_fmt_ratio_ci(row.ratio, confidence)})" if math.isfinite(r) else "")
            + f"; {_p(row.p_adjusted)}."
        )
    if not math.isfinite(r):
        return f"{what}: no comparable value in {row.label} or {baseline_label}."
    direction = "higher" if r >= 1 else "lower"
    size = _times(r) if r >= 1 else _times(1 / r)
    ci = row.ratio
    if r < 1 and math.isfinite(ci.low) and math.isfinite(ci.high) and ci.low > 0:
        ci = Interval(1 / r, 1 / ci.high, 1 / ci.low)
    unit = _unit_pair(row)
    return (
        f"{_cap(what)} is {size} {direction} in {row.label} than in "
        f"{baseline_label} ({unit}){_fmt_ratio_ci(ci, confidence)}."
    )


def _cap(text: str) -> str:
    """Capitalise a sentence start, but never a percentile name ('p95 TTFT')."""
    if text[:1] == "p" and text[1:2].isdigit():
        return text
    return text[:1].upper() + text[1:]


def _unit_pair(row: Row) -> str:
    if row.metric == "cost_per_ok_request":
        return f"${row.value:.6f} vs ${row.baseline_value:.6f}"
    return f"{_ms(row.value)} vs {_ms(row.baseline_value)}"


def _ms(v: float) -> str:
    """Two decimals of a second, and a tenth of a ms under 10 ms: small shifts stay visible."""
    return fmt_ms(v, tenths_s_from=math.inf, tenths_ms_below=10.0)


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def findings_text(
    runs: Sequence[RunSample],
    rows: Sequence[Row],
    confidence: float,
    workloads: Sequence[WorkloadRow] = (),
) -> list[str]:
    """Per run: one sentence per latency metric that differs (its p95 when that differs, else
    the percentile that moved most), then error rate and cost; then what did not differ."""
    base = runs[0].label
    out: list[str] = []
    for run in runs[1:]:
        mine = [r for r in rows if r.label == run.label]
        said: list[Row] = []
        no_ok = [r for r in (runs[0], run) if r.requests == r.failed]
        for r in no_ok:
            out.append(
                f"{r.label} has no successful request: latency and cost per successful "
                f"request cannot be compared."
            )
        for metric, _ in LATENCY_METRICS:
            sig = [r for r in mine if r.metric.startswith(metric + ".") and r.significant]
            head = next((r for r in sig if r.metric.endswith(".p95")), None)
            if head is None and sig:
                head = max(sig, key=lambda r: abs(math.log(r.ratio.value)))
            if head is not None:
                said.append(head)
        small = [r for r in said if _pos(r.ratio.value) and _negligible(r.ratio.value)]
        said = [r for r in said if r not in small]
        said.sort(key=lambda r: -abs(math.log(r.ratio.value)) if _pos(r.ratio.value) else 0.0)
        others = [r for r in mine if r.metric in OTHER_METRICS and r.significant]
        small += [
            r
            for r in others
            if r.metric == "cost_per_ok_request"
            and _pos(r.ratio.value)
            and _negligible(r.ratio.value)
        ]
        said += [r for r in others if r not in small]
        out += [finding(r, base, confidence) for r in said]
        out += workload_findings(workloads, run.label, base)
        att_fail = 1.0 - run.outcomes.get("ok", 0) / run.attempts if run.attempts else 0.0
        if att_fail >= 0.01 and att_fail > 2 * run.error_rate:
            out.append(
                f"In {run.label}, {att_fail:.1%} of attempts failed; retries and failover "
                f"brought that down to {run.error_rate:.2%} of requests "
                f"({run.attempts - run.requests} extra attempts)."
            )
        if small:
            names = ", ".join(dict.fromkeys(_family(r.metric) for r in small))
            out.append(
                f"{_cap(names)}: {run.label} differs from {base} by less than "
                f"{MIN_EFFECT:.0%} (statistically detectable, practically the same)."
            )
        differ = {_family(r.metric) for r in said + small}
        if no_ok:  # nothing to test on latency or cost: not "no difference" either
            differ |= {name for _, name in LATENCY_METRICS} | {_family("cost_per_ok_request")}
        quiet = [f for f in dict.fromkeys(_family(r.metric) for r in mine) if f not in differ]
        if quiet:
            out.append(
                f"No significant difference between {run.label} and {base} in: "
                f"{', '.join(quiet)} (Holm-adjusted p >= {ALPHA:g} or CI includes 1x)."
            )
        thin = [
            r
            for r in (runs[0], run)
            if 0 < min(len(v) for v in r.latency.values()) < 30 and r not in no_ok
        ]
        for r in thin:
            out.append(
                f"{r.label} has fewer than 30 successful requests: its percentile CIs are wide; "
                f"run it longer for a firmer answer."
            )
    return out


def _negligible(ratio: float) -> bool:
    return 1.0 / (1.0 + MIN_EFFECT) < ratio < 1.0 + MIN_EFFECT


def _family(metric: str) -> str:
    """'ttft_ms.p95' -> 'TTFT'; 'error_rate' -> 'error rate'."""
    base = metric.split(".")[0]
    return dict(LATENCY_METRICS).get(base) or metric_label(metric)


def _pos(x: float) -> bool:
    return math.isfinite(x) and x > 0


def workload_findings(rows: Sequence[WorkloadRow], label: str, baseline: str) -> list[str]:
    """For one run: each shared workload whose p95 TTFT moved, and the workloads it adds."""
    mine = [r for r in rows if r.label == label]
    out = []
    # One workload, the same in both runs: the overall rows already say it all.
    alone = len(mine) == 1 and mine[0].share == 1.0 and mine[0].baseline_share == 1.0
    for r in [] if alone else mine:
        iv = r.ttft_p95
        if not (r.baseline_requests and _pos(iv.value) and _pos(iv.low) and _pos(iv.high)):
            continue
        if (iv.low > 1.0 or iv.high < 1.0) and not _negligible(iv.value):
            word = "higher" if iv.value > 1 else "lower"
            size = iv.value if iv.value > 1 else 1 / iv.value
            lo, hi = (iv.low, iv.high) if iv.value > 1 else (1 / iv.high, 1 / iv.low)
            out.append(
                f"The {r.workload} workload alone: p95 TTFT {_times(size)} {word} in {label} "
                f"({_ms(r.ttft_p95_ms)} vs {_ms(r.baseline_ttft_p95_ms)}), "
                f"95% CI {_times(lo)}-{_times(hi)}."
            )
    new = [r for r in mine if r.baseline_requests == 0 and r.requests > 0]
    if new:
        parts = [
            f"{r.workload} ({r.share:.0%} of requests"
            + (f", p95 TTFT {_ms(r.ttft_p95_ms)}" if math.isfinite(r.ttft_p95_ms) else "")
            + ")"
            for r in new
        ]
        out.append(
            f"New workloads in {label} (not in {baseline}): {', '.join(parts)}; they shift "
            f"the overall figures (compare like with like with --workload)."
        )
    return out
