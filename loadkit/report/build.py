"""`loadkit report RUN_DIR`: summary.json (extended), charts/*.png and report.html.

Reads the run folder only. A damaged requests.csv still gets a report of the rows that
could be read, with a warning naming the first bad line; a folder without a scenario gets
everything the records alone can show.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadkit.analysis.hits import attribute
from loadkit.analysis.models import mismatch_lines
from loadkit.analysis.run import RunAnalysis, analyse
from loadkit.analysis.served import served_lines
from loadkit.analysis.verdict import headline, with_stop_reason
from loadkit.errors import UserError
from loadkit.report import charts as C
from loadkit.report import style as S
from loadkit.report.facts import folder_facts
from loadkit.report.html import render
from loadkit.results.faults_schema import FaultHit, read_fault_hits
from loadkit.results.reader import Records, read_records
from loadkit.results.run_folder import RunFolder, write_json


@dataclass(frozen=True)
class ReportResult:
    html: Path
    charts: tuple[Path, ...]
    summary: dict[str, Any]
    notes: tuple[str, ...]
    damaged: bool  # rows were skipped (not just a truncated last line)

    @property
    def verdict(self) -> str:
        return str(self.summary["verdict"]["overall"])


def load_records(folder: RunFolder) -> tuple[Records, bool]:
    """(records, damaged): the fast reader, else every well-formed row of a damaged file."""
    from loadkit.report.salvage import salvage

    path = folder.requests_csv
    if not path.exists():
        raise UserError(f"{folder.path}: no requests.csv (not a loadkit run folder?)")
    try:
        return read_records(path), False
    except UserError as exc:
        msg = str(exc)
        if f"{path}:1:" in msg or msg.startswith("cannot read"):
            raise  # missing, empty or a foreign header: nothing to salvage
        return salvage(path, msg), True


def _chart_plan(a: RunAnalysis, slo: Any) -> list[tuple[str, str, str, Callable[[], Any]]]:
    regions = sorted(set(a.logical.region.astype(str).tolist()))
    rc = S.region_colors(regions)
    wc = S.color_map(a.logical.workload.astype(str).tolist())
    w = f"{a.windows.width_s:g} s windows"
    plan: list[tuple[str, str, str, Callable[[], Any]]] = [
        (
            "latency_over_time",
            "Latency over time",
            f"TTFT, ITL and E2E p50/p95/p99 of successful attempts per {w} (by send time). "
            "Shaded: fault windows. Dotted red: SLO limits.",
            lambda: C.latency_over_time(a, slo),
        ),
        (
            "latency_vs_load",
            "Latency against load",
            "Each point is one window: its load against its p50/p95 TTFT, ITL and E2E; the "
            "line follows "
            "the median per load band. A bend upwards is the knee.",
            lambda: C.latency_vs_load(a, slo),
        ),
        (
            "latency_cdf",
            "Latency distributions",
            "Share of successful attempts at or below each latency, all regions and per region.",
            lambda: C.latency_cdf(a, slo, rc),
        ),
        (
            "failures",
            "Failures over time",
            "Top: failed attempts by outcome as a share of attempts sent in each window, and "
            "logical requests that still failed after retries. Bottom: failures the chaos "
            "proxy injected (fault tag) against organic ones. Green dashed: recovery.",
            lambda: C.failures_over_time(a, slo),
        ),
        (
            "throughput",
            "Throughput and goodput",
            "Requests started, succeeded and succeeded within every SLO limit per second; "
            "mean requests in flight on the right axis.",
            lambda: C.throughput(a),
        ),
        (
            "cost",
            "Cost",
            "Cost per successful request includes what failed attempts and retries cost. "
            "Tokens per second count successful attempts' output tokens.",
            lambda: C.cost(a),
        ),
        (
            "by_region",
            "By region",
            "Latency as users in each region felt it (from their first attempt to the answer, "
            "retries and failover included), failed requests and cost.",
            lambda: C.breakdown_chart(a, "region", rc),
        ),
        (
            "by_workload",
            "By workload",
            "The same per workload.",
            lambda: C.breakdown_chart(a, "workload", wc),
        ),
    ]
    behind = any(f.get("upstream") for f in a.extra.get("faults", []))
    if len(a.extra.get("upstreams", [])) > 1 or behind:  # one upstream is no failover
        plan.insert(
            4,
            (
                "served_by",
                "Traffic per upstream",
                "Attempts per second by the upstream that answered (`served_by`: loadkit's "
                "own upstream listener, else the gateway's response headers), stacked. Shaded: "
                "fault windows; a gateway's failover shows as traffic moving off the faulted "
                "upstream and its return after the window.",
                lambda: C.served_by(a),
            ),
        )
    if a.summary.get("open_loop"):
        plan.append(
            (
                "offered_served",
                "Offered against served",
                "Open-loop arrivals per second by window: planned by the schedule "
                "(schedule.json), sent (their first request left), served (answered ok, by "
                "the time the answer ended). Arrivals the run ended before sending are "
                "`not_sent` records.",
                lambda: C.offered_served(a),
            )
        )
        plan.append(
            (
                "schedule_lag",
                "Schedule lag",
                "How late open-loop requests left against their intended time. TTFT and E2E "
                "above are measured from the intended time, so lag is not hidden.",
                lambda: C.schedule_lag(a),
            )
        )
    return plan


def read_hits(folder: RunFolder) -> list[FaultHit]:
    """The proxy's hit journal, if the run has one (a damaged one is read as far as it goes)."""
    return read_fault_hits(folder.fault_hits_csv)


def build_report(run_dir: str | Path, window_s: float | None = None) -> ReportResult:
    folder = RunFolder(Path(run_dir))
    if not folder.path.is_dir():
        raise UserError(f"{run_dir}: not a folder")
    records, damaged = load_records(folder)
    ff = folder_facts(folder, window_s)
    notes = list(records.notes) + list(ff.notes)
    if records.n == 0:
        notes.append("requests.csv holds no complete records: nothing to chart")
    kinds = {w.fault_id: w.kind for w in ff.facts.faults}
    journaled = folder.fault_hits_csv.exists()
    cols, joined = attribute(records.columns, read_hits(folder), kinds, journaled)
    a = analyse(cols, ff.facts)
    if joined.hits:
        a.extra["fault_hits"] = joined.to_json()
        if joined.truncated:
            notes.append(
                f"{joined.truncated} answers recorded ok were cut upstream by a fault and "
                "re-ended by the service in between (a gateway): counted as truncated"
            )
    notes += mismatch_lines(a.summary.get("model_mismatch") or [])
    doc = _summary_doc(folder, records, a, notes)
    notes += [line for line in served_lines(doc) if line.startswith("warning:")]
    if not doc.get("scenario") and ff.scenario is not None:
        doc["scenario"] = ff.scenario.name
    doc["verdict"] = with_stop_reason(doc["verdict"], doc.get("stop_reason"))
    charts_dir = folder.charts
    written: list[tuple[Path, str, str]] = []
    slo = ff.facts.slo
    with S.chart_style():
        for name, heading, caption, draw in _chart_plan(a, slo):
            written.append((S.save(draw(), charts_dir / f"{name}.png"), heading, caption))
    doc["report"] = {
        "html": folder.REPORT_HTML,
        "charts": [f"{folder.CHARTS}/{p.name}" for p, _, _ in written],
        "notes": notes,
        "damaged_records": damaged,
    }
    write_json(folder.summary_json, doc)
    title = f"loadkit report: {doc.get('scenario') or folder.path.name}"
    html = folder.report_html
    tmp = html.with_suffix(".html.tmp")
    tmp.write_text(render(doc, written, notes, title), encoding="utf-8")
    tmp.replace(html)
    return ReportResult(html, tuple(p for p, _, _ in written), doc, tuple(notes), damaged)


def _summary_doc(
    folder: RunFolder, records: Records, a: RunAnalysis, notes: list[str]
) -> dict[str, Any]:
    """The run's summary.json with the analysis added (keys `loadkit run` wrote are kept)."""
    doc: dict[str, Any] = {}
    if folder.summary_json.exists():
        try:
            old = json.loads(folder.summary_json.read_text(encoding="utf-8"))
            doc = old if isinstance(old, dict) else {}
        except ValueError:
            notes.append("summary.json was unreadable; rewritten from the records")
    doc.update(a.to_json())
    if not doc.get("run_id") and records.n:
        doc["run_id"] = str(records["run_id"][0])
    doc["records_truncated"] = bool(records.truncated)
    return doc


def report_line(result: ReportResult) -> str:
    """What `loadkit report` and `loadkit run` print."""
    return f"readiness: {headline(result.summary['verdict'])}\nreport: {result.html}"
