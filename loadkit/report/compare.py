"""`loadkit compare`: charts, compare.json and a self-contained compare.html for 2+ runs.

The first run is the baseline (the pilot); each other run is read against it. The page
opens with the findings in plain words and the headline chart (each metric's ratio to the
baseline with its 95% CI), the one a platform team puts in front of leadership; the
detail follows: CDFs overlaid, percentile bars with CIs, failures by outcome, cost per
successful request, and the table of deltas with the tests behind every sentence.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadkit.analysis import compare as cmp
from loadkit.analysis.slo import Limits
from loadkit.analysis.stats import ecdf
from loadkit.errors import UserError
from loadkit.report import style
from loadkit.results.run_folder import RunFolder

HEADLINE_METRICS: tuple[str, ...] = (
    "ttft_ms.p95",
    "itl_ms.p95",
    "e2e_ms.p95",
    "error_rate",
    "slo_miss_rate",
    "cost_per_ok_request",
)


@dataclass(frozen=True)
class RunInput:
    label: str
    path: Path


@dataclass(frozen=True)
class Subset:
    """Compare like with like: only these workloads / regions (empty: all)."""

    workloads: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        bits = []
        if self.workloads:
            bits.append("workload " + ", ".join(self.workloads))
        if self.regions:
            bits.append("region " + ", ".join(self.regions))
        return "; ".join(bits)


def read_run(
    folder: Path, label: str, limits: Limits | None = None, subset: Subset | None = None
) -> cmp.RunSample:
    """One run folder's records as a comparable sample; a damaged file is read as far as it
    can be, with a note."""
    from loadkit.results.reader import read_records

    path = Path(folder)
    csv_path = RunFolder(path).requests_csv if path.is_dir() else path
    if not csv_path.exists():
        raise UserError(f"{path}: not a run folder (no requests.csv)")
    try:
        recs = read_records(csv_path)
    except UserError as exc:
        try:
            from loadkit.report.salvage import salvage
        except ImportError:
            raise exc from None
        recs = salvage(csv_path, str(exc))
    cols = recs.columns
    if subset is not None:
        keep = np.ones(recs.n, dtype=bool)
        if subset.workloads:
            keep &= np.isin(np.asarray(cols["workload"]).astype(str), subset.workloads)
        if subset.regions:
            keep &= np.isin(np.asarray(cols["region"]).astype(str), subset.regions)
        cols = {k: v[keep] for k, v in cols.items()}
    if len(cols["outcome"]) == 0:
        where = f" for {subset.text}" if subset is not None and subset.text else ""
        raise UserError(f"{csv_path}: no records to compare{where}")
    return cmp.run_sample(cols, label, str(path), recs.notes, limits)


def baseline_limits(folder: Path) -> tuple[Limits | None, str | None]:
    """Per-request SLO limits from the baseline run's scenario (one bar for every run)."""
    from loadkit.analysis.slo import limits_from
    from loadkit.report.facts import load_scenario_of

    scenario, why = load_scenario_of(RunFolder(Path(folder)))
    if scenario is None:
        return None, why
    lim = limits_from(scenario.slo)
    return (lim, None) if lim.any else (None, "the baseline scenario sets no SLO")


def default_labels(folders: Sequence[Path]) -> list[str]:
    """The scenario name from each summary.json, else the folder name; made unique."""
    labels = []
    for f in folders:
        name = None
        f = Path(f).parent if Path(f).is_file() else Path(f)
        summary = RunFolder(f).summary_json
        if summary.exists():
            try:
                name = json.loads(summary.read_text()).get("scenario")
            except (OSError, ValueError):
                name = None
        labels.append(str(name or Path(f).name))
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        if labels.count(lab) > 1:
            seen[lab] = seen.get(lab, 0) + 1
            lab = f"{lab} ({seen[lab]})"
        out.append(lab)
    return out


# -- charts ---------------------------------------------------------------------------------


def _ratio_label(v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.2f}x" if v < 1.995 else f"{v:.1f}x" if v < 9.95 else f"{v:.0f}x"


def headline_chart(c: cmp.Comparison) -> Any:
    """Each headline metric as a ratio to the baseline, CI whiskers, 1x line; log axis."""
    others = [r.label for r in c.runs[1:]]
    colors = style.run_colors([r.label for r in c.runs])
    rows = {(r.label, r.metric): r for r in c.rows}
    metrics = [m for m in HEADLINE_METRICS if any((lab, m) in rows for lab in others)]
    height = max(3.2, 0.55 * len(metrics) * max(1, len(others)) + 1.6)
    with style.chart_style():
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10.0, height), layout="constrained")
        ax = fig.subplots()
        band = 0.8 / max(1, len(others))
        vals: list[float] = []
        for j, lab in enumerate(others):
            for i, m in enumerate(metrics):
                row = rows.get((lab, m))
                if row is None:
                    continue
                y = i + (j - (len(others) - 1) / 2) * band
                pair = f"{_fmt_value(m, row.value)} vs {_fmt_value(m, row.baseline_value)}"
                if not _pos(row.ratio.value):
                    if row.value == 0 and row.baseline_value == 0:
                        note = "none in either run"
                    elif not math.isfinite(row.value):
                        note = "no successful request" + ("" if len(others) > 1 else f" in {lab}")
                    elif not math.isfinite(row.baseline_value):
                        note = f"no successful request in {c.baseline.label}"
                    elif row.baseline_value == 0:
                        note = f"{pair}  (none in {c.baseline.label}: no ratio)"
                    else:
                        note = f"{pair}  (no ratio)"
                    if row.significant:
                        note += "  significant"
                    if len(others) > 1:
                        note = f"{lab}: {note}"
                    ax.text(
                        1.02,
                        y,
                        _mpl(note),
                        va="center",
                        fontsize=9,
                        color=colors[lab],
                        fontweight="bold" if row.significant else "normal",
                    )
                    continue
                v = row.ratio.value
                vals.append(v)
                sig = row.significant
                ax.barh(
                    y,
                    v - 1.0,
                    left=1.0,
                    height=band * 0.8,
                    color=colors[lab],
                    alpha=0.95 if sig else 0.35,
                    hatch=None if sig else "//",
                    edgecolor=colors[lab],
                )
                lo, hi = row.ratio.low, row.ratio.high
                if _pos(lo) and _pos(hi):
                    ax.errorbar(
                        v,
                        y,
                        xerr=[[v - lo], [hi - v]],
                        fmt="none",
                        ecolor="#1B2631",
                        capsize=3,
                        linewidth=1.2,
                    )
                    vals += [lo, hi]
                text = f"{_ratio_label(v)}   {pair}" + ("" if sig else "  (not significant)")
                if len(others) > 1:
                    text = f"{lab}: {text}"
                ax.text(
                    max(v, hi if _pos(hi) else v) * 1.04,
                    y,
                    _mpl(text),
                    va="center",
                    ha="left",
                    fontsize=9,
                    color="#1B2631",
                    fontweight="bold" if sig else "normal",
                )
        ax.axvline(1.0, color="#1B2631", linewidth=1.2)
        ax.set_xscale("log")
        if vals:
            lo_v, hi_v = min([*vals, 1.0]), max([*vals, 1.0])
            ax.set_xlim(lo_v / 1.25, hi_v * 3.2)
        _ratio_ticks(ax)
        ax.set_yticks(range(len(metrics)))
        ax.set_yticklabels([cmp.metric_label(m) for m in metrics])
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(f"ratio to {c.baseline.label} (log scale; 1x = same; bars: 95% CI)")
        names = ", ".join(others)
        style.title(
            ax,
            f"How {names} compare{'s' if len(others) == 1 else ''} with {c.baseline.label}",
            "right of the line: higher (worse) than the baseline; hatched: not significant",
        )
        if len(others) > 1:
            from matplotlib.patches import Patch

            handles = [Patch(color=colors[lab], label=lab) for lab in others]
            ax.legend(handles=handles, loc="lower right")
    return fig


def _ratio_ticks(ax: Any) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    lo, hi = ax.get_xlim()
    cands = [0.1, 0.2, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000]
    ticks = [t for t in cands if lo <= t <= hi]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))


def cdf_chart(c: cmp.Comparison) -> Any:
    """TTFT, ITL and E2E distributions of every run overlaid (log x), p95 marked."""
    colors = style.run_colors([r.label for r in c.runs])
    with style.chart_style():
        from matplotlib.figure import Figure

        fig = Figure(figsize=(12.0, 4.2), layout="constrained")
        axes = fig.subplots(1, 3)
        for ax, (metric, name) in zip(axes, cmp.LATENCY_METRICS, strict=True):
            drawn = False
            spans: list[np.ndarray] = []
            for run in c.runs:
                x, f = ecdf(run.latency[metric])
                x, f = x[x > 0], f[x > 0]
                if x.size == 0:
                    continue
                drawn = True
                spans.append(x)
                ax.plot(x, f, color=colors[run.label], linewidth=1.8, label=run.label)
                p95 = c.percentile_cis[run.label][metric]["p95"].value
                if math.isfinite(p95) and p95 > 0:
                    ax.plot([p95], [0.95], "o", color=colors[run.label], markersize=5)
            if not drawn:
                style.empty(ax)
                continue
            lo_x = min(float(np.min(x)) for x in spans)
            hi_x = max(float(np.max(x)) for x in spans)
            log = hi_x / max(lo_x, 1e-9) > 5
            _ms_axis(ax, log)
            ax.axhline(0.95, color="#7F7F7F", linewidth=0.8, linestyle=":")
            ax.text(
                1.0,
                0.95,
                " p95",
                transform=ax.get_yaxis_transform(),
                fontsize=8,
                color="#7F7F7F",
                va="center",
            )
            ax.set_ylim(0, 1.0)
            ax.set_xlabel(f"{name} (log scale)" if log else name)
            ax.set_ylabel("share of successful requests")
            style.title(ax, f"{name} distribution", "further right = slower")
        axes[0].legend(loc="lower right")
    return fig


def _ms_axis(ax: Any, log: bool) -> None:
    """A latency x axis labelled '200 ms', '1 s', '5 s' (log: 1-2-5 ticks, no minor labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    if log:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: style.fmt_ms(v, short=True)))


def percentile_chart(c: cmp.Comparison) -> Any:
    """p50 / p95 / p99 per run as grouped bars with bootstrap CI whiskers, one panel a metric."""
    colors = style.run_colors([r.label for r in c.runs])
    pcts = [f"p{p:g}" for p in cmp.COMPARE_PCTS]
    with style.chart_style():
        from matplotlib.figure import Figure

        fig = Figure(figsize=(12.0, 4.2), layout="constrained")
        axes = fig.subplots(1, 3)
        width = 0.8 / len(c.runs)
        for ax, (metric, name) in zip(axes, cmp.LATENCY_METRICS, strict=True):
            top = 0.0
            for j, run in enumerate(c.runs):
                ivs = [c.percentile_cis[run.label][metric][p] for p in pcts]
                xs = np.arange(len(pcts)) + (j - (len(c.runs) - 1) / 2) * width
                v = np.array([iv.value for iv in ivs])
                lo = np.array([iv.low for iv in ivs])
                hi = np.array([iv.high for iv in ivs])
                ok = np.isfinite(v)
                ax.bar(xs[ok], v[ok], width * 0.9, color=colors[run.label], label=run.label)
                err_ok = ok & np.isfinite(lo) & np.isfinite(hi)
                ax.errorbar(
                    xs[err_ok],
                    v[err_ok],
                    yerr=[v[err_ok] - lo[err_ok], hi[err_ok] - v[err_ok]],
                    fmt="none",
                    ecolor="#1B2631",
                    capsize=3,
                    linewidth=1.0,
                )
                if err_ok.any():
                    top = max(top, float(np.nanmax(hi[err_ok])))
                elif ok.any():
                    top = max(top, float(np.nanmax(v[ok])))
            ax.set_xticks(range(len(pcts)))
            ax.set_xticklabels(pcts)
            ax.set_ylabel(style.label(name, "ms"))
            if top > 0:
                ax.set_ylim(0, top * 1.12)
            ax.grid(axis="x", visible=False)
            style.title(ax, f"{name} percentiles", "whiskers: 95% bootstrap CI")
        axes[0].legend(loc="upper left")
    return fig


def failures_chart(c: cmp.Comparison) -> Any:
    """Failed attempts by outcome (stacked, % of attempts) and failed requests per run."""
    labels = [r.label for r in c.runs]
    outcomes = sorted({o for r in c.runs for o in r.outcomes if o != "ok"})
    with style.chart_style():
        fig, ax = style.figure("half" if len(labels) <= 3 else "wide")
        x = np.arange(len(labels))
        bottom = np.zeros(len(labels))
        for o in outcomes:
            share = np.array([100.0 * r.outcomes.get(o, 0) / max(r.attempts, 1) for r in c.runs])
            ax.bar(x, share, 0.6, bottom=bottom, color=style.outcome_color(o), label=o)
            bottom += share
        for i, r in enumerate(c.runs):
            ax.text(
                i,
                bottom[i],
                f"{style.fmt_pct(r.error_rate, 2)} of requests failed\n"
                f"({r.failed} of {r.requests})",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xlim(-0.6, len(labels) - 0.4)
        if not outcomes:
            ax.text(
                0.5,
                0.55,
                "no failed attempt in any run",
                transform=ax.transAxes,
                ha="center",
                color=style.GO_COLOR,
                fontsize=11,
            )
        ax.set_xticks(x)
        ax.set_xticklabels(labels)
        ax.set_ylabel(style.label("failed attempts", "% of attempts"))
        ax.set_ylim(0, max(float(bottom.max()) * 1.35, 1.0))
        ax.grid(axis="x", visible=False)
        if outcomes:
            ax.legend(loc="upper left", title="outcome")
        style.title(ax, "Failures by outcome", "retries included; text: requests that failed")
    return fig


def cost_chart(c: cmp.Comparison) -> Any:
    """Cost per successful request per run (failed attempts included), 95% CI."""
    labels = [r.label for r in c.runs]
    colors = style.run_colors(labels)
    with style.chart_style():
        fig, ax = style.figure("half" if len(labels) <= 3 else "wide")
        x = np.arange(len(labels))
        vals, los, his = [], [], []
        for r in c.runs:
            iv = cmp.cost_per_ok_ci(r, c.confidence)
            vals.append(iv.value)
            los.append(iv.low)
            his.append(iv.high)
        v = np.array(vals)
        if not np.isfinite(v).any() or np.nanmax(v) <= 0:
            style.empty(ax, "no cost recorded (no pricing in the scenarios)")
        else:
            # Pick a unit people read: dollars per 1,000 successful requests.
            scale = 1000.0
            ok = np.isfinite(v)
            ax.bar(
                x[ok],
                v[ok] * scale,
                0.6,
                color=[colors[lab] for lab, k in zip(labels, ok, strict=True) if k],
            )
            lo, hi = np.array(los), np.array(his)
            e_ok = ok & np.isfinite(lo) & np.isfinite(hi)
            ax.errorbar(
                x[e_ok],
                v[e_ok] * scale,
                yerr=[(v - lo)[e_ok] * scale, (hi - v)[e_ok] * scale],
                fmt="none",
                ecolor="#1B2631",
                capsize=4,
            )
            for i in np.flatnonzero(ok):
                ax.text(
                    i,
                    (his[i] if math.isfinite(his[i]) else v[i]) * scale,
                    _mpl(style.fmt_usd(v[i] * scale)),
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    fontweight="bold",
                )
            ax.set_ylabel("USD per 1,000 successful requests")
            ax.set_ylim(0, float(np.nanmax(np.where(e_ok, hi, v))) * scale * 1.2)
        ax.set_xticks(x)
        ax.set_xticklabels(labels)
        ax.grid(axis="x", visible=False)
        style.title(ax, "Cost per successful request", "failed attempts and retries included")
    return fig


# -- html -----------------------------------------------------------------------------------

_CSS = """
body{font-family:'DejaVu Sans',Arial,sans-serif;margin:0;background:#f6f7f9;color:#1B2631}
main{max-width:1180px;margin:0 auto;padding:28px 32px 60px;background:#fff}
h1{font-size:26px;margin:0 0 4px} h2{font-size:18px;margin:34px 0 10px;
border-bottom:2px solid #E5E5E5;padding-bottom:4px}
.sub{color:#555;margin:0 0 18px}
.findings{font-size:16px;line-height:1.55;background:#F4F8FB;border-left:5px solid #0072B2;
padding:12px 20px;margin:14px 0}
.findings li{margin:4px 0}
img{max-width:100%;display:block;margin:10px 0}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:5px 8px;border-bottom:1px solid #E5E5E5;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
th{background:#F4F6F7}
tr.sig td{font-weight:bold}
.muted{color:#7F7F7F;font-size:12px}
.note{color:#8E44AD}
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fmt_value(metric: str, v: float) -> str:
    if not math.isfinite(v):
        return "n/a"
    if metric in ("error_rate", "slo_miss_rate"):
        return style.fmt_pct(v, 2)
    if metric == "cost_per_ok_request":
        return style.fmt_usd(v)
    return style.fmt_ms(v)


def _ci_text(iv: cmp.Interval) -> str:
    if not (math.isfinite(iv.value) and math.isfinite(iv.low) and math.isfinite(iv.high)):
        return "n/a"
    return f"{_ratio_label(iv.low)} - {_ratio_label(iv.high)}"


def _p_text(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return "&lt; 0.001" if p < 0.001 else f"{p:.3f}"


def limits_text(lim: Limits | None) -> str:
    if lim is None:
        return ""
    bits = [
        f"{name} <= {style.fmt_ms(v)}"
        for name, v in (("TTFT", lim.ttft_ms), ("ITL", lim.itl_ms), ("E2E", lim.e2e_ms))
        if v is not None
    ]
    return ", ".join(bits) + " and no error"


def render_html(c: cmp.Comparison, charts: dict[str, Path], slo_text: str = "") -> str:
    e = html.escape
    labels = [r.label for r in c.runs]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>loadkit compare: {e(' vs '.join(labels))}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>{e(' vs '.join(labels))}</h1>",
        f"<p class='sub'>Each run against the baseline <b>{e(c.baseline.label)}</b>. "
        f"{c.confidence:.0%} confidence intervals; differences called significant only after "
        f"Holm's correction for the number of tests."
        + (f" Only {e(c.subset)}." if c.subset else "")
        + (f" SLO per request (from the baseline's scenario): {e(slo_text)}." if slo_text else "")
        + "</p>",
        "<h2>Findings</h2><ul class='findings'>",
        *[f"<li>{e(f)}</li>" for f in c.findings],
        "</ul>",
    ]
    if "headline" in charts:
        parts.append(_img(charts["headline"], "ratios to the baseline"))
    parts.append(
        "<h2>The runs</h2><table><tr><th>run</th><th>folder</th><th>requests</th>"
        "<th>req/s</th><th>failed</th><th>p95 TTFT</th><th>p95 E2E</th>"
        "<th>cost / successful request</th></tr>"
    )
    for r in c.runs:
        ci = c.percentile_cis[r.label]
        parts.append(
            f"<tr><td>{e(r.label)}</td><td class='muted'>{e(Path(r.path).name)}</td>"
            f"<td>{r.requests}</td><td>{r.requests_per_s:.2f}</td>"
            f"<td>{style.fmt_pct(r.error_rate, 2)}</td>"
            f"<td>{style.fmt_ms(ci['ttft_ms']['p95'].value)}</td>"
            f"<td>{style.fmt_ms(ci['e2e_ms']['p95'].value)}</td>"
            f"<td>{style.fmt_usd(r.cost_per_ok_request)}</td></tr>"
        )
    parts.append("</table>")
    if c.workloads:
        parts.append(
            "<h2>By workload</h2><p class='sub'>A different workload mix moves the overall "
            "percentiles: here each workload's p95 against the same workload in "
            f"{e(c.baseline.label)}.</p><table><tr><th>workload</th><th>run</th>"
            f"<th>share ({e(c.baseline.label)} &rarr; run)</th><th>p95 TTFT</th><th>ratio</th>"
            "<th>95% CI</th><th>p95 E2E</th><th>ratio</th><th>95% CI</th></tr>"
        )
        for w in c.workloads:
            parts.append(
                f"<tr><td>{e(w.workload)}</td><td>{e(w.label)}</td>"
                f"<td>{style.fmt_pct(w.baseline_share, 0)} &rarr; {style.fmt_pct(w.share, 0)}"
                f"</td><td>{style.fmt_ms(w.ttft_p95_ms)}</td>"
                f"<td>{_ratio_label(w.ttft_p95.value) if w.baseline_requests else 'new'}</td>"
                f"<td>{_ci_text(w.ttft_p95)}</td><td>{style.fmt_ms(w.e2e_p95_ms)}</td>"
                f"<td>{_ratio_label(w.e2e_p95.value) if w.baseline_requests else 'new'}</td>"
                f"<td>{_ci_text(w.e2e_p95)}</td></tr>"
            )
        parts.append("</table>")
    notes = [f"{r.label}: {n}" for r in c.runs for n in r.notes]
    if notes:
        parts.append("<p class='note'>" + "<br>".join(e(n) for n in notes) + "</p>")
    for key, title in (
        ("cdf", "Latency distributions"),
        ("percentiles", "Percentiles with confidence intervals"),
        ("failures", "Failures"),
        ("cost", "Cost"),
    ):
        if key in charts:
            parts.append(f"<h2>{title}</h2>" + _img(charts[key], title))
    parts.append(
        "<h2>Deltas and tests</h2><table><tr><th>metric</th><th>run</th>"
        f"<th>{e(c.baseline.label)}</th><th>value</th><th>ratio</th><th>95% CI</th>"
        "<th>test</th><th>p</th><th>p (Holm)</th><th>significant</th></tr>"
    )
    for row in c.rows:
        cls = " class='sig'" if row.significant else ""
        parts.append(
            f"<tr{cls}><td>{e(cmp.metric_label(row.metric))}</td><td>{e(row.label)}</td>"
            f"<td>{_fmt_value(row.metric, row.baseline_value)}</td>"
            f"<td>{_fmt_value(row.metric, row.value)}</td>"
            f"<td>{_ratio_label(row.ratio.value)}</td><td>{_ci_text(row.ratio)}</td>"
            f"<td class='muted'>{e(row.test.name)}</td><td>{_p_text(row.test.p_value)}</td>"
            f"<td>{_p_text(row.p_adjusted)}</td><td>{'yes' if row.significant else 'no'}</td>"
            "</tr>"
        )
    parts.append("</table>")
    parts.append(
        "<p class='muted'>Latency: successful attempts (TTFT from send; ITL is each "
        "request's mean gap; E2E to the last byte). Percentile CIs: bootstrap of each run "
        "(order-statistic draws, exact for resampling). Latency rows: Mann-Whitney U test on "
        "the whole distribution, and significant only when the percentile's own ratio CI "
        "excludes 1x. Error rate: share of logical requests whose last attempt failed, "
        "two-proportion z-test. Cost per successful request: all attempts' cost over "
        "successful requests, ratio estimator with delta-method variance.</p>"
    )
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_compare(
    folders: Sequence[Path],
    labels: Sequence[str] | None,
    out_dir: Path,
    seed: int = 0,
    subset: Subset | None = None,
) -> cmp.Comparison:
    """Read the runs, compare, write charts/*.png, compare.json and compare.html."""
    from loadkit.results.run_folder import write_json

    if len(folders) < 2:
        raise UserError("compare needs at least two run folders")
    if labels is not None and len(labels) != len(folders):
        raise UserError(f"--labels: {len(labels)} labels for {len(folders)} runs")
    names = list(labels) if labels is not None else default_labels(folders)
    if len(set(names)) != len(names):
        raise UserError(f"--labels must be unique, got {', '.join(names)}")
    base_dir = Path(folders[0])
    limits, _why = baseline_limits(base_dir.parent if base_dir.is_file() else base_dir)
    runs = [read_run(Path(f), lab, limits, subset) for f, lab in zip(folders, names, strict=True)]
    c = cmp.compare_runs(runs, seed=seed, subset=subset.text if subset else "")
    out = Path(out_dir)
    try:
        (out / "charts").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create it ({exc.strerror})") from None
    charts: dict[str, Path] = {}
    for key, make in (
        ("headline", headline_chart),
        ("cdf", cdf_chart),
        ("percentiles", percentile_chart),
        ("failures", failures_chart),
        ("cost", cost_chart),
    ):
        charts[key] = style.save(make(c), out / "charts" / f"compare_{key}.png")
    write_json(out / "compare.json", cmp.comparison_json(c))
    page = render_html(c, charts, limits_text(limits))
    (out / "compare.html").write_text(page, encoding="utf-8")
    return c


def _mpl(text: str) -> str:
    """Text for matplotlib: a dollar sign is literal, not the start of mathtext."""
    return text.replace("$", r"\$")


def _pos(x: float) -> bool:
    return math.isfinite(x) and x > 0
