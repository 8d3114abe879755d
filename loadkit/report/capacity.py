"""`loadkit capacity` output: the knee chart and a self-contained capacity.html."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loadkit.report import style
from loadkit.results.run_folder import RunFolder

if TYPE_CHECKING:
    from loadkit.analysis.capacity import CapacityResult


def _slo_p95(slo: dict[str, Any], metric: str) -> float | None:
    d = {str(k).lstrip("p"): float(v) for k, v in (slo.get(metric) or {}).items()}
    return d.get("95")


def knee_chart(r: CapacityResult) -> Any:
    """Throughput, p95 TTFT and p95 ITL against load; SLO lines, breached steps in red,
    the capacity and the planned peak marked."""
    steps = r.steps
    x = np.array([s.level for s in steps], dtype=np.float64)
    ok = np.array([s.ok for s in steps])
    series = [
        (
            "Throughput",
            "requests/s",
            np.array([s.ok_requests_per_s for s in steps]),
            None,
        ),
        (
            "p95 TTFT",
            "ms",
            np.array([np.nan if s.ttft_p95_ms is None else s.ttft_p95_ms for s in steps]),
            _slo_p95(r.slo, "ttft_ms"),
        ),
        (
            "p95 ITL",
            "ms",
            np.array([np.nan if s.itl_p95_ms is None else s.itl_p95_ms for s in steps]),
            _slo_p95(r.slo, "itl_ms"),
        ),
    ]
    with style.chart_style():
        from matplotlib.figure import Figure
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

        fig = Figure(figsize=(10.0, 8.2), layout="constrained")
        axes = fig.subplots(3, 1, sharex=True)
        for i, (ax, (name, unit, y, limit)) in enumerate(zip(axes, series, strict=True)):
            color = style.PALETTE[0] if i == 0 else style.PCT_STYLE["p95"]["color"]
            ax.plot(
                x,
                y,
                "-",
                color=color,
                linewidth=2.0,
                zorder=2,
                label="successful requests" if i == 0 else None,
            )
            good = np.array([np.nan if s.goodput_per_s is None else s.goodput_per_s for s in steps])
            if i == 0 and np.isfinite(good).any():
                ax.plot(
                    x,
                    good,
                    "--",
                    color=style.GO_COLOR,
                    linewidth=1.6,
                    zorder=2,
                    label="goodput (met every per-request SLO)",
                )
            if i == 0:
                _offered_lines(ax, steps, x)
            ax.scatter(x[ok], y[ok], color=style.GO_COLOR, s=42, zorder=3, label="met every SLO")
            ax.scatter(
                x[~ok],
                y[~ok],
                color=style.NOGO_COLOR,
                s=52,
                marker="X",
                zorder=3,
                label="an SLO breached" if (~ok).any() else None,
            )
            if limit is not None:
                style.slo_line(ax, limit, f"SLO {style.fmt_ms(limit)}")
            if r.capacity is not None:
                ax.axvline(r.capacity, color=style.GO_COLOR, linewidth=1.4, linestyle="--")
            if r.planned_peak > 0:
                ax.axvline(r.planned_peak, color="#1B2631", linewidth=1.2, linestyle=":")
            ax.set_ylabel(style.label(name, unit))
            top = np.nanmax(np.append(y, limit if limit is not None else np.nan))
            if np.isfinite(top) and top > 0:
                ax.set_ylim(0, top * 1.18)
        sub = _subtitle(r)
        if r.capacity is None:
            head = f"Capacity of {r.scenario}: even the lowest load broke an SLO"
        elif r.all_passed:
            head = f"Capacity of {r.scenario}: no SLO broke up to {r.capacity:g} {r.unit}"
        else:
            head = f"Capacity of {r.scenario}: the SLO breaks above {r.capacity:g} {r.unit}"
        style.title(axes[0], head, sub)
        tops = axes[0].get_ylim()[1]
        same = r.capacity is not None and r.capacity == r.planned_peak
        if r.capacity is not None:
            axes[0].text(
                r.capacity,
                tops,
                f" capacity {r.capacity:g} {r.unit}" + (" = planned peak" if same else ""),
                fontsize=9,
                color=style.GO_COLOR,
                va="top",
                ha="left",
                fontweight="bold",
            )
        if r.planned_peak > 0 and not same:
            axes[0].text(
                r.planned_peak,
                tops * 0.86,
                f" planned peak {r.planned_peak:g}",
                fontsize=9,
                color="#1B2631",
                va="top",
                ha="left",
            )
        if r.throughput_knee is not None:
            k = r.throughput_knee
            yk = float(series[0][2][np.flatnonzero(x == k)[0]]) if (x == k).any() else None
            if yk is not None:
                axes[0].annotate(
                    "throughput knee",
                    (k, yk),
                    xytext=(-30, -48),
                    textcoords="offset points",
                    fontsize=8,
                    color="#555555",
                    arrowprops={"arrowstyle": "-", "color": "#999"},
                )
        axes[0].legend(loc="lower right")
        ax = axes[-1]
        if x.size and (x > 0).all():
            ax.set_xscale("log", base=2)
        ticks = sorted(set(x.tolist()) | ({r.planned_peak} if r.planned_peak > 0 else set()))
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        lo = min(ticks) if ticks else 1
        hi = max(ticks) if ticks else 2
        ax.set_xlim(lo / 1.3, hi * 1.3)
        ax.set_xlabel(
            f"load ({'concurrent users' if r.kind == 'users' else 'session arrivals/s'}, log scale)"
        )
    return fig


def _offered_lines(ax: Any, steps: Any, x: np.ndarray) -> None:
    """Open-loop steps: arrivals planned and served per second against the load, so the
    knee shows where served stops following offered."""
    if not any(s.offered for s in steps):
        return
    for key, label, ls in (
        ("planned_per_s", "offered (planned arrivals/s)", ":"),
        ("served_per_s", "served (arrivals answered ok/s)", "-."),
    ):
        y = np.array(
            [np.nan if not s.offered or s.offered[key] is None else s.offered[key] for s in steps]
        )
        ax.plot(x, y, ls, color="#1B2631", linewidth=1.4, zorder=2, label=label)


def _subtitle(r: CapacityResult) -> str:
    cap = r.at_capacity()
    if r.capacity is None or cap is None:
        return "no tested load met every SLO: start lower"
    head = f"{cap.ok_requests_per_s:.1f} successful req/s at capacity; "
    if r.all_passed:
        return head + "every step met every SLO: test higher loads to find the limit"
    if r.planned_peak > r.capacity:
        return head + (
            f"the planned peak ({r.planned_peak:g}) needs "
            f"{r.planned_peak / r.capacity:.1f}x this capacity"
        )
    if r.planned_peak > 0:
        return head + f"{r.capacity / r.planned_peak:.1f}x the planned peak of {r.planned_peak:g}"
    return head.rstrip("; ")


_CSS = """
body{font-family:'DejaVu Sans',Arial,sans-serif;margin:0;background:#f6f7f9;color:#1B2631}
main{max-width:1100px;margin:0 auto;padding:28px 32px 60px;background:#fff}
h1{font-size:26px;margin:0 0 4px} h2{font-size:18px;margin:30px 0 10px;
border-bottom:2px solid #E5E5E5;padding-bottom:4px}
.answer{font-size:17px;line-height:1.6;background:#F4F8FB;border-left:5px solid #0072B2;
padding:12px 20px;margin:14px 0}
img{max-width:100%;display:block;margin:10px 0}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:5px 8px;border-bottom:1px solid #E5E5E5;text-align:right}
th:first-child,td:first-child{text-align:left}
th{background:#F4F6F7} td.ok{color:#1E8449;font-weight:bold} td.bad{color:#C0392B}
.muted{color:#7F7F7F;font-size:12px}
"""


def _run_link(run_dir: Path, out_dir: Path | None) -> str:
    """The step's folder name, linked to its report.html when `loadkit report` wrote one."""
    name = html.escape(run_dir.name)
    report = RunFolder(run_dir).report_html
    if out_dir is None or not report.exists():
        return name
    try:
        rel = report.resolve().relative_to(Path(out_dir).resolve())
    except ValueError:
        return name
    return f"<a href='{html.escape(rel.as_posix())}'>{name}</a>"


def render_html(r: CapacityResult, chart: Path, out_dir: Path | None = None) -> str:
    e = html.escape
    cap = r.at_capacity()
    answer = []
    if r.capacity is None:
        answer.append("No tested load met every SLO.")
    else:
        more = "at least " if r.all_passed else ""
        line = f"Highest load that met every SLO: <b>{more}{r.capacity:g} {e(r.unit)}</b>"
        if cap is not None:
            line += f" ({cap.ok_requests_per_s:.2f} successful requests/s"
            if cap.cost_per_ok_request:
                line += f", {e(style.fmt_usd(cap.cost_per_ok_request))} per successful request"
            line += ")."
        answer.append(line)
    answer.append(f"Headroom: {e(r.headroom)}.")
    if r.throughput_knee is not None:
        answer.append(f"Throughput stops growing with load near {r.throughput_knee:g} {e(r.unit)}.")
    if r.latency_knee is not None:
        answer.append(f"p95 TTFT turns upward near {r.latency_knee:g} {e(r.unit)}.")
    if out_dir is not None and (Path(out_dir) / "knee-compare" / "compare.html").exists():
        answer.append(
            "What changed past the knee, with confidence intervals: "
            "<a href='knee-compare/compare.html'>the capacity step against the first "
            "step that broke an SLO</a>."
        )
    data = base64.b64encode(chart.read_bytes()).decode("ascii")
    rows = []
    open_loop = any(s.offered for s in r.steps)
    for s in r.steps:
        verdict = "met every SLO" if s.ok else "breached: " + ", ".join(s.breached)
        rows.append(
            f"<tr><td>{s.level:g}</td><td>{s.requests}</td><td>{s.ok_requests_per_s:.2f}</td>"
            f"<td>{s.output_tokens_per_s:.0f}</td><td>{style.fmt_ms(s.ttft_p95_ms)}</td>"
            f"<td>{style.fmt_ms(s.itl_p95_ms)}</td><td>{style.fmt_ms(s.e2e_p95_ms)}</td>"
            f"<td>{style.fmt_pct(s.error_rate, 2)}</td>"
            f"<td>{e(style.fmt_usd(s.cost_per_ok_request))}</td>"
            + (_offered_cells(s.offered) if open_loop else "")
            + f"<td class='{'ok' if s.ok else 'bad'}'>{e(verdict)}</td>"
            f"<td class='muted'>{_run_link(Path(s.run_dir), out_dir)}</td></tr>"
        )
    slo_bits = []
    for metric, name in (("ttft_ms", "TTFT"), ("itl_ms", "ITL"), ("e2e_ms", "E2E")):
        for k, v in (r.slo.get(metric) or {}).items():
            slo_bits.append(f"{name} {k} &le; {e(style.fmt_ms(float(v)))}")
    if r.slo.get("error_rate") is not None:
        slo_bits.append(f"error rate &le; {style.fmt_pct(float(r.slo['error_rate']), 2)}")
    warm = r.steps[0].warmup_s if r.steps else math.nan
    win = r.steps[0].window_s if r.steps else math.nan
    return "\n".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>loadkit capacity: {e(r.scenario)}</title><style>{_CSS}</style></head>",
            f"<body><main><h1>Capacity: {e(r.scenario)}</h1>",
            f"<p class='muted'>SLOs: {'; '.join(slo_bits) or 'none in the scenario'}</p>",
            "<div class='answer'>" + "<br>".join(answer) + "</div>",
            f"<img alt='knee chart' src='data:image/png;base64,{data}'>",
            "<h2>Steps</h2><table><tr><th>load</th><th>requests</th><th>ok req/s</th>"
            "<th>output tok/s</th><th>p95 TTFT</th><th>p95 ITL</th><th>p95 E2E</th>"
            "<th>errors</th><th>cost / ok request</th>"
            + (
                "<th>offered/s</th><th>sent/s</th><th>served/s</th><th>never sent</th>"
                if open_loop
                else ""
            )
            + "<th>SLO</th><th>run folder</th></tr>",
            *rows,
            "</table>",
            f"<p class='muted'>Each step is a separate run; it is judged on the requests sent "
            f"after a {warm:g} s warm-up, over {win:g} s. Capacity is the highest load that, "
            f"with every lower load, met every SLO. Open a step with loadkit report, or compare "
            f"two steps with loadkit compare.</p>",
            "</main></body></html>",
        ]
    )


def _offered_cells(o: dict[str, Any] | None) -> str:
    """Offered against served for one open-loop step (arrivals per second)."""
    if not o:
        return "<td></td>" * 4
    planned = "-" if o.get("planned_per_s") is None else f"{o['planned_per_s']:.2f}"
    return (
        f"<td>{planned}</td><td>{o['sent_per_s']:.2f}</td><td>{o['served_per_s']:.2f}</td>"
        f"<td>{o['not_sent']:,}</td>"
    )


def write_capacity_report(r: CapacityResult, out_dir: Path) -> Path:
    chart = style.save(knee_chart(r), Path(out_dir) / "charts" / "knee.png")
    page = Path(out_dir) / "capacity.html"
    page.write_text(render_html(r, chart, Path(out_dir)), encoding="utf-8")
    return page
