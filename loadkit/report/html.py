"""report.html: one self-contained file (CSS inline, charts as base64 PNG) that opens
offline in any browser. Every value from the run is HTML-escaped."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from loadkit.analysis.providers import worth_showing
from loadkit.analysis.verdict import headline
from loadkit.report import style as S
from loadkit.report.sizes import sizes_html

_CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;margin:0;
color:#1B2631;background:#F7F8FA}
main{max-width:1120px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid
#E5E5E5;padding-bottom:4px}.sub{color:#555;font-size:13px;margin-bottom:16px}
table{border-collapse:collapse;font-size:13px;margin:8px 0 12px;width:100%}
th,td{padding:5px 8px;border-bottom:1px solid #EEE;text-align:left;vertical-align:top}
th{background:#F2F4F7;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff;font-weight:600;
font-size:12px;white-space:nowrap}
.go{background:GO_C}.no-go{background:NOGO_C}.not-tested,.info{background:NA_C}
.verdict{font-size:20px;padding:12px 16px;border-radius:6px;color:#fff;margin:12px 0}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}.kpi{flex:1 1 150px;border:1px solid
#E5E5E5;border-radius:6px;padding:8px 12px}.kpi b{display:block;font-size:20px}
.kpi span{color:#555;font-size:12px}img{max-width:100%;display:block;margin:8px 0 4px}
.cap{color:#555;font-size:13px;margin:0 0 18px}.warn{background:#FDEDEC;border-left:4px solid
NOGO_C;padding:8px 12px;margin:8px 0;font-size:13px}footer{color:#777;font-size:12px;
margin-top:32px}
"""


def _css() -> str:
    return (
        _CSS.replace("NOGO_C", S.NOGO_COLOR).replace("GO_C", S.GO_COLOR).replace("NA_C", S.NA_COLOR)
    )


def _e(v: Any) -> str:
    return escape(str(v))


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(path.stem)}" src="data:image/png;base64,{data}">'


def _badge(status: str) -> str:
    return f'<span class="badge {status.replace(" ", "-")}">{_e(status.upper())}</span>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for r in rows:
        cells = []
        for i, v in enumerate(r):
            cls = ' class="n"' if i in numeric else ""
            cells.append(f"<td{cls}>{v}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _p(d: Mapping[str, Any] | None, k: str) -> str:
    return S.fmt_ms((d or {}).get(k))


def render(
    doc: Mapping[str, Any],
    charts: Sequence[tuple[Path, str, str]],
    notes: Sequence[str],
    title: str,
) -> str:
    """The page; `charts` are (png, heading, caption)."""
    v = doc["verdict"]
    overall = v["overall"]
    color = S.GO_COLOR if overall == "go" else S.NOGO_COLOR
    head = (
        headline(v)
        if v["failing"]
        else "GO: every tested check passed"
        + (f" ({len(v['not_tested'])} not tested)" if v["not_tested"] else "")
    )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_css()}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        '<div class="sub">' + _e(_subtitle(doc)) + "</div>",
    ]
    parts += [f'<div class="warn">{_e(n)}</div>' for n in notes]
    parts.append(f'<div class="verdict" style="background:{color}">{_e(head)}</div>')
    parts.append(_kpis(doc))
    parts.append("<h2>Readiness review</h2>")
    parts.append(
        _table(
            ["area", "check", "verdict", "evidence"],
            [
                (_e(i["area"]), _e(i["check"]), _badge(i["status"]), _e(i["evidence"]))
                for i in v["items"]
            ],
            set(),
        )
    )
    parts.append("<h2>SLOs and goodput</h2>" + _slo_table(doc))
    parts.append(sizes_html(doc))
    for png, heading, caption in charts:
        parts.append(f"<h2>{_e(heading)}</h2>{_img(png)}<p class='cap'>{_e(caption)}</p>")
        if png.stem == "failures" and doc.get("faults"):
            parts.append(_fault_table(doc["faults"]))
        if png.stem == "failures" and doc.get("errors"):
            parts.append(_error_table(doc["errors"]))
        if png.stem == "cost":
            parts.append(_cost_table(doc["cost"]))
            if worth_showing(doc.get("providers") or []):
                parts.append(_provider_table(doc["providers"]))
        if png.stem == "offered_served" and doc.get("offered"):
            parts.append(_offered_table(doc["offered"]))
        if png.stem in ("by_region", "by_workload"):
            by = png.stem.split("_", 1)[1]
            parts.append(_breakdown_table(doc["breakdown"][by], by, doc))
    parts.append(
        "<footer>Definitions: TTFT is first content-bearing chunk minus send time (open loop: "
        "from the intended send time); ITL the gaps between content chunks (mean per request); "
        "E2E last byte minus send time; a request's user-visible latency spans all its attempts. "
        "Goodput: requests per second that succeeded and met every SLO. Cost per successful "
        "request includes failed attempts and retries. Generated by loadkit report.</footer>"
    )
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _subtitle(doc: Mapping[str, Any]) -> str:
    parts = [f"run {doc['run_id']}" if doc.get("run_id") else None]
    if doc.get("started_at"):
        parts.append(f"started {doc['started_at']}")
    parts.append(f"{doc['duration_s']:.1f} s of traffic")
    parts.append("open loop" if doc.get("open_loop") else "closed loop")
    if doc.get("stop_reason"):
        parts.append(f"stopped: {doc['stop_reason']}")
    return " - ".join(p for p in parts if p)


def _kpis(doc: Mapping[str, Any]) -> str:
    g = doc.get("goodput") or {}
    c = doc.get("cost") or {}
    ttft_key = "ttft_from_intended_ms" if doc.get("open_loop") else "ttft_ms"
    items = [
        (f"{doc['requests']:,}", f"requests ({doc['requests_per_s']:.2f}/s)"),
        (S.fmt_pct(doc["error_rate"], 2), "requests failed after retries"),
        (f"{g.get('goodput_per_s', 0):.2f}/s", f"goodput ({S.fmt_pct(g.get('good_share'))})"),
        (_p(doc.get(ttft_key), "p95"), "p95 time to first token"),
        (_p(doc.get("e2e_ms"), "p95"), "p95 end-to-end"),
        (f"{doc['output_tokens_per_s']:.0f}", "output tokens/s"),
        (S.fmt_usd(c.get("per_ok_request_usd")), "per successful request"),
    ]
    hits = (doc.get("prompt_cache_hits") or {}).get("share")
    if hits is not None:
        salted = " (salted prompts)" if doc.get("prompt_salt") else ""
        items.append((S.fmt_pct(hits), f"prompt tokens from the service's cache{salted}"))
    return (
        '<div class="kpis">'
        + "".join(f'<div class="kpi"><b>{_e(a)}</b><span>{_e(b)}</span></div>' for a, b in items)
        + "</div>"
    )


def _slo_table(doc: Mapping[str, Any]) -> str:
    rows = []
    for c in (doc.get("slo") or {}).get("checks", []):
        if c["metric"] == "error_rate":
            val, lim = S.fmt_pct(c["value"], 2), S.fmt_pct(c["limit"], 2)
        else:
            val, lim = S.fmt_ms(c["value"]), S.fmt_ms(c["limit"])
        rows.append((_e(_metric_name(c["metric"])), val, lim, _badge("go" if c["ok"] else "no-go")))
    g = doc.get("goodput") or {}
    out = (
        _table(["SLO", "measured", "limit", ""], rows, {1, 2})
        if rows
        else ("<p>The scenario sets no SLO.</p>")
    )
    lim = g.get("limits_ms") or {}
    set_lims = ", ".join(f"{k} <= {S.fmt_ms(v)}" for k, v in lim.items() if v is not None)
    out += (
        f"<p>Goodput: <b>{g.get('goodput_per_s', 0):.3f} requests/s</b> "
        f"({g.get('good_requests', 0):,} requests, {S.fmt_pct(g.get('good_share'))} of all) "
        f"succeeded with every per-request limit met ({_e(set_lims or 'no latency limits')}; "
        "the loosest limit the SLO sets for each metric).</p>"
    )
    return out


def _metric_name(metric: str) -> str:
    """`ttft_ms.p95` -> `p95 TTFT`."""
    if "." not in metric:
        return metric.replace("_", " ")
    field, pct = metric.split(".", 1)
    return f"{pct} {field.removesuffix('_ms').upper()}"


def _fault_table(faults: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for f in faults:
        rec = f"{f['recovery_s']:.1f} s" if f["recovered"] else _e(f["recovery_note"])
        rows.append(
            (
                _e(f["fault_id"]),
                _e(f["kind"]),
                _e(f["region"] or "all"),
                f"{f['start_s']:.0f}-{f['end_s']:.0f} s",
                S.fmt_pct(f["error_rate"], 2),
                S.fmt_ms(f["ttft_p95_ms"]),
                f"{f['failed_attempts_injected']:,} / {f['failed_attempts_organic']:,}",
                f"{f['failover_requests']:,}",
                rec,
            )
        )
    return _table(
        [
            "fault",
            "kind",
            "region",
            "window",
            "error rate",
            "p95 TTFT",
            "failed: injected / organic",
            "failovers",
            "recovery",
        ],
        rows,
        {4, 5, 7},
    )


def _error_table(errors: Sequence[Mapping[str, Any]]) -> str:
    """The most frequent failure messages: what a count of failures does not say."""
    upstream = any(e["upstream"] for e in errors)
    rows = []
    for e in errors:
        row = [_e(e["outcome"]), _e(e["region"] or "-")]
        if upstream:
            row.append(_e(e["upstream"] or "-"))
        row += [
            f"<code>{_e(e['message'])}</code>",
            ", ".join(str(s) for s in e["statuses"]) or "-",
            f"{e['attempts']:,}",
            S.fmt_pct(e["share_of_failed"], 1),
            f"{e['first_s']:.0f}-{e['last_s']:.0f} s",
        ]
        rows.append(row)
    head = ["outcome", "region", *(["upstream"] if upstream else []), "message"]
    head += ["status", "attempts", "of failed", "seen"]
    n = len(head)
    return "<h3>Top error messages</h3>" + _table(head, rows, {n - 3, n - 2})


def _provider_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Traffic and cost per provider API and endpoint (attempts: a failed-over request
    counts at every provider it reached)."""
    body = [
        (
            _e(r["api"]),
            _e(r["endpoint"]),
            f"{r['attempts']:,}",
            f"{r['ok']:,}",
            _e(", ".join(f"{k} {v}" for k, v in sorted(r["failed"].items())) or "none"),
            _e(S.fmt_usd(r["cost_usd"])),
            _e(S.fmt_usd(r["cost_usd_per_ok"])),
            f"{r['cached_tokens']:,} / {r['cache_write_tokens']:,}",
            "-" if r["ttft_p95_ms"] is None else f"{r['ttft_p95_ms']:.0f}",
        )
        for r in rows
    ]
    headers = [
        "api",
        "endpoint",
        "attempts",
        "ok",
        "failed",
        "cost",
        "per ok attempt",
        "cache read / write tokens",
        "p95 TTFT ms",
    ]
    return "<h3>Per provider</h3>" + _table(headers, body, {2, 3, 5, 6, 7, 8})


def _offered_table(o: Mapping[str, Any]) -> str:
    """Planned, sent and served arrivals per phase (or window), and the wait for slots."""
    rows = [
        (
            _e(p["name"]),
            f"{p['t0_s']:.0f}-{p['t1_s']:.0f} s",
            f"{p['planned_per_s']:.2f}",
            f"{p['sent_per_s']:.2f}",
            f"{p['served_per_s']:.2f}",
        )
        for p in o.get("phases") or []
    ]
    planned = "-" if o.get("planned_per_s") is None else f"{o['planned_per_s']:.2f}"
    rows.append(("whole run", "", planned, f"{o['sent_per_s']:.2f}", f"{o['served_per_s']:.2f}"))
    lag = o.get("sched_lag_ms") or {}
    cap = o.get("max_in_flight")
    note = (
        f"<p>{o['sent']:,} arrivals sent, {o['not_sent']:,} never sent"
        + (f" of {o['planned']:,} planned" if o.get("planned") is not None else "")
        + (
            f"; max_in_flight {cap} was full for {o.get('cap_full_s') or 0:.1f} s while "
            "arrivals were due"
            if cap
            else ""
        )
        + f"; schedule lag p50 {S.fmt_ms(lag.get('p50'))}, p95 {S.fmt_ms(lag.get('p95'))}, "
        f"p99 {S.fmt_ms(lag.get('p99'))}, max {S.fmt_ms(lag.get('max'))} (limit "
        f"{S.fmt_ms(o.get('max_lag_ms'))}).</p>"
    )
    skipped = o.get("skipped") or {}
    if skipped:
        why = ", ".join(f"{v:,} ({_e(k)})" for k, v in skipped.items())
        note += f"<p>Not yet due when the run stopped, so not counted as failures: {why}.</p>"
    head = ["span", "time", "planned/s", "sent/s", "served/s"]
    return _table(head, rows, {2, 3, 4}) + note


def _cost_table(c: Mapping[str, Any]) -> str:
    rows = [
        ("total spend", S.fmt_usd(c.get("total_usd"))),
        ("per request", S.fmt_usd(c.get("per_request_usd"))),
        ("per successful request", S.fmt_usd(c.get("per_ok_request_usd"))),
        (
            "spent on failed attempts",
            f"{S.fmt_usd(c.get('wasted_usd'))} ({S.fmt_pct(c.get('wasted_share'))})",
        ),
        (
            "spent on retries",
            f"{S.fmt_usd(c.get('retry_usd'))} ({S.fmt_pct(c.get('retry_share'))})",
        ),
    ]
    if c.get("budget_usd") is not None:
        rows.append(("budget (per run)", S.fmt_usd(c["budget_usd"])))
    if c.get("planned_run_cost_usd") is not None:
        rows.append(("planned cost of this run", S.fmt_usd(c["planned_run_cost_usd"])))
    p = c.get("monthly_projection")
    if p:
        rows.append(
            (
                f"monthly at the measured rate ({p['measured_requests_per_s']:.2f} req/s)",
                S.fmt_usd(p["monthly_usd"]),
            )
        )
        for key, label in (("peak", "planned peak"), ("mean", "planned mean")):
            if f"monthly_usd_at_planned_{key}" in p:
                rate = p[f"planned_{key}_requests_per_s"]
                rows.append(
                    (
                        f"monthly at the scenario's {label} ({rate:.2f} req/s)",
                        S.fmt_usd(p[f"monthly_usd_at_planned_{key}"]),
                    )
                )
        if p.get("rate_note"):
            rows.append(("request rate", p["rate_note"]))
    return _table(["cost", "USD"], [(_e(a), _e(b)) for a, b in rows], {1})


def _breakdown_table(
    rows: Sequence[Mapping[str, Any]], by: str, doc: Mapping[str, Any] | None = None
) -> str:
    # Per workload: the share of answers that ended before max_tokens and of prompt tokens
    # the service served from its cache (loadkit.analysis.served).
    served = by == "workload" and doc is not None and "early_stops" in doc
    early = ((doc or {}).get("early_stops") or {}).get("by_workload") or {}
    hits = ((doc or {}).get("prompt_cache_hits") or {}).get("by_workload") or {}
    out = []
    for r in rows:
        cells = [
            _e(r[by]),
            f"{r['requests']:,}",
            S.fmt_pct(r["error_rate"], 2),
            _p(r["ttft_ms"], "p50"),
            _p(r["ttft_ms"], "p95"),
            _p(r["e2e_ms"], "p95"),
            f"{r['goodput_per_s']:.3f}",
            S.fmt_usd(r["cost_usd_per_ok_request"]),
            f"{r['failover_requests']:,}",
        ]
        if served:
            cells.append(S.fmt_pct((early.get(r[by]) or {}).get("share"), 1))
            cells.append(S.fmt_pct((hits.get(r[by]) or {}).get("share"), 1))
        out.append(tuple(cells))
    headers = [
        by,
        "requests",
        "failed",
        "p50 TTFT",
        "p95 TTFT",
        "p95 E2E",
        "goodput/s",
        "per successful request",
        "failovers",
    ]
    if served:
        headers += ["ended before max_tokens", "prompt tokens from cache"]
    return _table(headers, out, set(range(1, len(headers))))
