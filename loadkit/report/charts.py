"""The per-run charts. Each function draws one PNG's Figure from a `RunAnalysis`.

Time axes are minutes from the run start for runs longer than 10 minutes, else seconds;
fault windows are shaded on every time chart; SLO limits are dotted red lines.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from loadkit.analysis.run import RunAnalysis
from loadkit.analysis.stats import ecdf
from loadkit.report import style as S


def _time_axis(a: RunAnalysis) -> tuple[float, str]:
    span = a.windows.n * a.windows.width_s
    return (60.0, "min") if span > 600 else (1.0, "s")


def _x(a: RunAnalysis) -> np.ndarray:
    div, _ = _time_axis(a)
    return a.series["t_s"] / div


def _xlabel(ax: Any, a: RunAnalysis) -> None:
    ax.set_xlabel(S.label("time since run start", _time_axis(a)[1]))


def _faults(ax: Any, a: RunAnalysis, label_them: bool = True) -> None:
    div, _ = _time_axis(a)
    spans = [
        (f["start_s"] / div, f["end_s"] / div, f["fault_id"]) for f in a.extra.get("faults", [])
    ]
    S.shade_windows(ax, spans, label_them=label_them)


def _recovery_marks(ax: Any, a: RunAnalysis) -> None:
    div, _ = _time_axis(a)
    first = True
    for f in a.extra.get("faults", []):
        if f.get("recovered"):
            x = (f["end_s"] + f["recovery_s"]) / div
            ax.axvline(
                x,
                color=S.GO_COLOR,
                linestyle="--",
                linewidth=1.2,
                label="recovered (within SLO again)" if first else None,
            )
            first = False


_OUTSIDE: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}


def _legend(ax: Any, **kw: Any) -> None:
    """A legend only when something is labelled (an empty chart has none)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _slo_pct(slo: Any, field: str, pct: str) -> float | None:
    d = getattr(slo, field, None) or {}
    for k, v in dict(d).items():
        if str(k).lstrip("p") == pct.lstrip("p"):
            return float(v)
    return None


def _has(v: np.ndarray) -> bool:
    return bool(np.isfinite(v).any())


def latency_over_time(a: RunAnalysis, slo: Any) -> Any:
    fig, axes = S.figure("tall", 3, 1, sharex=True)
    x = _x(a)
    basis = " from intended send" if a.summary.get("open_loop") else ""
    for ax, key, name, field in (
        (axes[0], "ttft", f"Time to first token{basis}", "ttft_ms"),
        (axes[1], "itl", "Inter-token latency (mean per request)", "itl_ms"),
        (axes[2], "e2e", f"End-to-end latency{basis}", "e2e_ms"),
    ):
        if not _has(a.series[f"{key}_p50"]):
            S.empty(ax, f"no successful {key.upper()} measurements")
            ax.set_title(name, loc="left")
            continue
        for p in ("p50", "p95", "p99"):
            ax.plot(x, a.series[f"{key}_{p}"], label=p, marker=".", markersize=3, **S.PCT_STYLE[p])
        top = float(np.nanmax(a.series[f"{key}_p99"]))
        for p in ("p95", "p99", "p50"):
            lim = _slo_pct(slo, field, p)
            if lim is not None:
                S.slo_line(ax, lim, f"SLO {p}")
                top = max(top, lim)
        ax.set_ylim(0, top * 1.3)  # room for the fault names above the lines
        _faults(ax, a, label_them=ax is axes[0])
        if ax is axes[0]:
            _recovery_marks(ax, a)
        ax.set_ylabel("ms")
        ax.set_title(name, loc="left")
    _legend(axes[0], **_OUTSIDE)
    _xlabel(axes[2], a)
    fig.suptitle(
        f"Latency over time ({a.windows.width_s:g} s windows, successful attempts)",
        x=0.01,
        ha="left",
        fontweight="bold",
    )
    return fig


def _load(a: RunAnalysis) -> tuple[np.ndarray, str]:
    if a.summary.get("open_loop"):
        return a.series["offered_rps"], "offered load (requests started per s)"
    return a.series["concurrency"], "concurrency (requests in flight, mean per window)"


def latency_vs_load(a: RunAnalysis, slo: Any) -> Any:
    fig, axes = S.figure("wide", 1, 3)
    load, xl = _load(a)
    for ax, key, name, field in (
        (axes[0], "ttft", "TTFT against load", "ttft_ms"),
        (axes[1], "itl", "ITL against load", "itl_ms"),
        (axes[2], "e2e", "E2E against load", "e2e_ms"),
    ):
        ok = np.isfinite(a.series[f"{key}_p95"]) & (a.series[f"{key}_n"] >= 1)
        if not ok.any():
            S.empty(ax)
            ax.set_title(name, loc="left")
            continue
        for p in ("p50", "p95"):
            st = S.PCT_STYLE[p]
            ax.scatter(
                load[ok],
                a.series[f"{key}_{p}"][ok],
                s=14,
                color=st["color"],
                alpha=0.7,
                label=f"{p} per window",
            )
            xs, ys = _binned(load[ok], a.series[f"{key}_{p}"][ok])
            if xs.size > 1 and _varies(load[ok]):
                ax.plot(xs, ys, color=st["color"], linewidth=st["linewidth"])
        lim = _slo_pct(slo, field, "p95")
        S.slo_line(ax, lim, "SLO p95")
        ax.set_ylabel("ms")
        top = max(float(np.nanmax(a.series[f"{key}_p95"][ok])), lim or 0.0)
        ax.set_ylim(0, top * 1.15)
        ax.set_xlim(0, max(float(np.max(load[ok])), 1e-9) * 1.1)
        ax.set_title(name, loc="left")
    fig.supxlabel(xl, fontsize=10)
    _legend(axes[0], loc="lower left")
    return fig


def _varies(x: np.ndarray) -> bool:
    """A trend against load means something only when the load changed (ramp, steps)."""
    top = float(np.max(x)) if x.size else 0.0
    return top > 0 and float(np.ptp(x)) > 0.3 * top


def _binned(x: np.ndarray, y: np.ndarray, bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Median y per load bin: the trend line through the per-window points."""
    if x.size < 4 or np.ptp(x) <= 0:
        return np.zeros(0), np.zeros(0)
    edges = np.linspace(x.min(), x.max(), bins + 1)
    k = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    xs, ys = [], []
    for b in range(bins):
        m = k == b
        if m.sum() >= 2:
            xs.append(float(np.median(x[m])))
            ys.append(float(np.median(y[m])))
    return np.array(xs), np.array(ys)


def latency_cdf(a: RunAnalysis, slo: Any, region_colors: dict[str, str]) -> Any:
    fig, axes = S.figure("wide", 1, 3)
    lr = a.logical
    regions = sorted(set(lr.region.astype(str).tolist()))
    for ax, key, name, field in (
        (axes[0], "ttft", "TTFT", "ttft_ms"),
        (axes[1], "itl", "ITL (mean per request)", "itl_ms"),
        (axes[2], "e2e", "E2E", "e2e_ms"),
    ):
        vals = a.attempt_cdf[key]
        x, y = ecdf(vals)
        if x.size == 0:
            S.empty(ax)
            ax.set_title(name, loc="left")
            continue
        ax.plot(x, y, color="#1B2631", linewidth=2, label="all")
        if len(regions) > 1 and key != "itl":
            for r in regions:
                xr, yr = ecdf(vals[a.attempt_region == r])
                if xr.size:
                    ax.plot(xr, yr, color=region_colors.get(r), linewidth=1.3, label=r)
        lim = _slo_pct(slo, field, "p95")
        if lim is not None:
            ax.axvline(lim, **S.SLO_LINE)
        ax.axhline(0.95, color="#AAAAAA", linewidth=0.8)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("ms")
        if x[-1] > 20 * max(x[0], 1e-9) and x[0] > 0:
            ax.set_xscale("log")
        ax.set_title(name, loc="left")
    axes[0].set_ylabel("share of successful attempts at or below")
    _legend(axes[0], loc="lower right")
    fig.suptitle(
        "Latency distributions (CDF; grey line at p95, red at the SLO)",
        x=0.01,
        ha="left",
        fontweight="bold",
    )
    return fig


def failures_over_time(a: RunAnalysis, slo: Any) -> Any:
    fig, axes = S.figure("tall", 2, 1, sharex=True)
    x = _x(a)
    ax = axes[0]
    ax.set_axisbelow(True)
    if a.outcome_series:
        names = list(a.outcome_series)
        ys = [np.nan_to_num(a.outcome_series[o]) * 100 for o in names]
        ax.stackplot(
            x, ys, labels=names, colors=[S.outcome_color(o) for o in names], alpha=0.85, step="mid"
        )
    else:
        ax.text(
            0.5,
            0.5,
            "no failed attempts",
            transform=ax.transAxes,
            ha="center",
            color=S.GO_COLOR,
            fontsize=11,
        )
    ax.plot(
        x,
        np.nan_to_num(a.series["error_rate"]) * 100,
        color="#1B2631",
        linewidth=1.5,
        label="requests failed (after retries)",
        drawstyle="steps-mid",
    )
    err = getattr(slo, "error_rate", None)
    if err is not None:
        S.slo_line(ax, 100 * float(err), "SLO")
    _faults(ax, a)
    _recovery_marks(ax, a)
    ax.set_ylabel("% of attempts")
    stacked = sum((np.nan_to_num(v) for v in a.outcome_series.values()), np.zeros(x.size))
    top = max(
        [1.0, float(np.max(stacked, initial=0.0)) * 100 * 1.15]
        + ([100 * float(err) * 1.5] if err is not None else [])
    )
    ax.set_ylim(0, min(top, 105))
    ax.set_title(
        "Failed attempts by outcome (stacked) and requests failed after retries", loc="left"
    )
    _legend(ax, **_OUTSIDE)
    ax = axes[1]
    ax.plot(
        x,
        a.series["failed_injected_per_s"],
        color=S.INJECTED_COLOR,
        linewidth=1.8,
        label="injected by the chaos layer",
        drawstyle="steps-mid",
    )
    ax.plot(
        x,
        a.series["failed_organic_per_s"],
        color=S.ORGANIC_COLOR,
        linewidth=1.8,
        label="organic",
        drawstyle="steps-mid",
    )
    _faults(ax, a, label_them=False)
    _recovery_marks(ax, a)
    ax.set_ylabel("failed attempts per s")
    ax.set_ylim(bottom=0)
    ax.set_title("Injected and organic failures", loc="left")
    _legend(ax, **_OUTSIDE)
    _xlabel(ax, a)
    return fig


def throughput(a: RunAnalysis) -> Any:
    fig, ax = S.figure("wide")
    x = _x(a)
    ax.plot(x, a.series["offered_rps"], color="#7F7F7F", linewidth=1.5, label="started")
    ax.plot(x, a.series["ok_rps"], color=S.OUTCOME_COLORS["ok"], linewidth=1.8, label="succeeded")
    ax.plot(
        x,
        a.series["goodput_rps"],
        color="#0072B2",
        linewidth=1.8,
        linestyle="--",
        label="goodput (succeeded within SLO)",
    )
    ax.set_ylabel("requests per s")
    ax.set_ylim(bottom=0)
    _faults(ax, a)
    ax2 = ax.twinx()
    ax2.plot(
        x,
        a.series["concurrency"],
        color="#E69F00",
        linewidth=1.2,
        alpha=0.8,
        label="in flight (right axis)",
    )
    ax2.set_ylabel("requests in flight")
    ax2.set_ylim(bottom=0)
    ax2.grid(False)
    ax2.spines["right"].set_visible(True)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=5)
    S.title(ax, "Throughput, goodput and concurrency")
    _xlabel(ax, a)
    return fig


def served_by(a: RunAnalysis) -> Any:
    """Attempts per second by the upstream that answered: a gateway's failover, drawn."""
    fig, ax = S.figure("wide")
    x = _x(a)
    names = a.extra.get("upstreams", [])
    colors = S.color_map(names)
    ys = [a.series[f"served_by:{n}"] for n in names]
    labels = list(names)
    cols = [colors[n] for n in names]
    unknown = a.series.get("served_by:")
    if unknown is not None and np.nansum(unknown) > 0:
        ys.append(unknown)
        labels.append("no upstream named (failed at the gateway, or not said)")
        cols.append("#BBBBBB")
    ax.stackplot(x, *[np.nan_to_num(y) for y in ys], labels=labels, colors=cols, alpha=0.85)
    ax.set_ylabel("attempts per s")
    ax.set_ylim(bottom=0)
    _faults(ax, a)
    _recovery_marks(ax, a)
    _legend(ax, **_OUTSIDE)
    S.title(ax, "Traffic per upstream")
    _xlabel(ax, a)
    return fig


def cost(a: RunAnalysis) -> Any:
    fig, axes = S.figure("tall", 2, 2)
    x = _x(a)
    c = a.extra["cost"]
    ax = axes[0, 0]
    per = a.series["cost_per_ok_usd"]
    if _has(per) and c["priced"]:
        ax.plot(x, per * 1000, color="#0072B2", linewidth=1.8, marker=".", markersize=3)
        ax.axhline(
            c["per_ok_request_usd"] * 1000,
            color="#7F7F7F",
            linestyle="--",
            linewidth=1,
            label=f"run: {S.fmt_usd(c['per_ok_request_usd'])}",
        )
        ax.legend(loc="lower right")
        _faults(ax, a, label_them=False)
        ax.set_ylim(0, float(np.nanmax(per)) * 1000 * 1.2)
    else:
        S.empty(ax, "no prices or no successes")
    ax.set_ylabel("USD per 1,000 successful requests")
    ax.set_title("Cost per successful request over time", loc="left")
    _xlabel(ax, a)
    ax = axes[0, 1]
    load, xl = _load(a)
    ok = np.isfinite(per)
    if ok.any() and c["priced"]:
        ax.scatter(load[ok], per[ok] * 1000, s=14, color="#0072B2", alpha=0.7)
        ax.set_ylim(0, float(np.nanmax(per)) * 1000 * 1.2)
        ax.set_xlim(left=0)
    else:
        S.empty(ax)
    ax.set_xlabel(xl)
    ax.set_ylabel("USD per 1,000 successful requests")
    ax.set_title("Cost per successful request against load", loc="left")
    ax = axes[1, 0]
    ax.plot(x, a.series["output_tokens_per_s"], color="#009E73", linewidth=1.8)
    _faults(ax, a, label_them=False)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("output tokens per s")
    ax.set_title("Output tokens per second (successful attempts)", loc="left")
    _xlabel(ax, a)
    ax = axes[1, 1]
    total = c["total_usd"] or 0.0
    if total > 0:
        useful = total - c["wasted_usd"]
        retry_ok = c["retry_ok_usd"]
        parts = [
            ("first attempts that succeeded", useful - retry_ok, S.OUTCOME_COLORS["ok"]),
            ("retries that succeeded", retry_ok, "#56B4E9"),
            ("failed attempts (wasted)", c["wasted_usd"], S.INJECTED_COLOR),
        ]
        left = 0.0
        for name, v, col in parts:
            share = v / total
            ax.barh(
                [0.6],
                [share * 100],
                left=left,
                height=0.5,
                color=col,
                label=f"{name}: {share:.1%} ({S.fmt_usd(v)})",
            )
            left += share * 100
        ax.set_xlim(0, 100)
        ax.set_ylim(-1.1, 1.0)
        ax.set_yticks([])
        ax.set_xlabel("% of spend")
        ax.legend(loc="lower left", ncols=1)
        ax.grid(False)
    else:
        S.empty(ax, "no prices for this model")
    ax.set_title(f"Where the money went ({S.fmt_usd(total)} in total)", loc="left")
    return fig


def breakdown_chart(a: RunAnalysis, by: str, colors: dict[str, str]) -> Any:
    lim = a.limits
    limits = [
        lim.ttft_p95_ms,
        None if lim.error_rate is None else 100 * lim.error_rate,
        None,
    ]
    rows = a.extra["breakdown"][by]
    fig, axes = S.figure("wide", 1, 3)
    names = [r[by] for r in rows]
    y = np.arange(len(names))
    cols = [colors.get(n, S.PALETTE[i % len(S.PALETTE)]) for i, n in enumerate(names)]
    panels: list[tuple[str, Callable[[dict[str, Any]], float | None], str]] = [
        ("p95 TTFT (ms)", lambda r: r["ttft_ms"]["p95"], "{:.0f}"),
        ("failed requests (%)", lambda r: 100 * r["error_rate"], "{:.2f}"),
        (
            "USD per 1,000 successful requests",
            lambda r: (
                None
                if r["cost_usd_per_ok_request"] is None
                else 1000 * r["cost_usd_per_ok_request"]
            ),
            "{:.3f}",
        ),
    ]
    for ax, (name, get, fmt), limit in zip(axes, panels, limits, strict=True):
        vals = [get(r) for r in rows]
        v = np.array([np.nan if x is None else x for x in vals], dtype=float)
        ax.set_axisbelow(True)
        ax.barh(y, np.nan_to_num(v), color=cols, height=0.6)
        for i, val in enumerate(v):
            ax.text(
                np.nan_to_num(val),
                i,
                " " + ("n/a" if np.isnan(val) else fmt.format(val)),
                va="center",
                fontsize=8,
            )
        ax.set_yticks(y, names if ax is axes[0] else [""] * len(names))
        ax.set_ylim(len(names) - 0.4, -0.6)  # first name on top
        ax.set_title(name, loc="left", fontsize=10)
        ax.grid(axis="y", visible=False)
        hi = max(np.nanmax(v) if _has(v) else 0, limit or 0)
        ax.set_xlim(0, hi * 1.25 if hi > 0 else 1)
        if limit is not None:
            ax.axvline(limit, **S.SLO_LINE)
            ax.text(
                limit,
                1.0,
                " SLO",
                transform=ax.get_xaxis_transform(),
                fontsize=8,
                color=S.SLO_LINE["color"],
                va="bottom",
            )
    fig.suptitle(
        f"By {by}: latency as users felt it, failures, cost", x=0.01, ha="left", fontweight="bold"
    )
    return fig


def schedule_lag(a: RunAnalysis) -> Any:
    fig, ax = S.figure("wide")
    x = _x(a)
    for p in ("p50", "p95", "p99"):
        ax.plot(x, a.series[f"lag_{p}"], label=p, **S.PCT_STYLE[p])
    ax.set_ylabel("ms late")
    ax.set_ylim(0, max(float(np.nanmax(a.series["lag_p99"])) * 1.3, 1.0))
    ax.legend(loc="upper left", ncols=3)
    S.title(
        ax,
        "Schedule lag (open loop)",
        "how late requests left against their intended time; lag that builds up means "
        "arrivals waited for a free slot under max_in_flight: the service was saturated",
    )
    _xlabel(ax, a)
    return fig


def offered_served(a: RunAnalysis) -> Any:
    """Planned, sent and served arrivals per second on one time axis (open loop)."""
    fig, ax = S.figure("wide")
    x = _x(a)
    lines = (
        ("planned_arrivals_rps", "planned", {"color": "#1B2631", "linestyle": "--"}),
        ("sent_arrivals_rps", "sent", {"color": "#0072B2"}),
        ("served_arrivals_rps", "served (answered ok)", {"color": S.OUTCOME_COLORS["ok"]}),
    )
    for key, label, style in lines:
        if key in a.series:
            ax.step(x, a.series[key], where="mid", label=label, linewidth=1.8, **style)
    _faults(ax, a, label_them=False)
    o = a.extra.get("offered") or {}
    if o.get("not_sent"):
        ax.plot([], [], " ", label=f"{o['not_sent']:,} arrivals never sent")
    ax.set_ylabel("arrivals per s")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", ncols=2)
    S.title(
        ax,
        "Offered against served (open loop)",
        "arrivals the schedule planned, the ones sent, and the ones answered ok, per second; "
        "served below planned means the service did not keep up",
    )
    _xlabel(ax, a)
    return fig
