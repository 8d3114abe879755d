"""One look for every loadkit chart: colours per region, outcome, percentile and run; fonts;
sizes; titles with units. Shared by the per-run report and `loadkit compare`/`capacity`.

No pyplot and no global state: charts are `matplotlib.figure.Figure` objects rendered by
the Agg canvas, styled inside `chart_style()` (a `matplotlib.rc_context`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from loadkit.fmt import fmt_ms as fmt_ms  # the report's latency format (re-exported)

# Okabe-Ito based, colour-blind safe; regions and runs draw from this list in order.
PALETTE: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # green
    "#CC79A7",  # purple-pink
    "#56B4E9",  # sky
    "#D55E00",  # vermillion
    "#7F7F7F",  # grey
    "#F0E442",  # yellow (last: weak on white)
)

# Outcomes keep their colour in every chart: ok green, client-side give-ups warm, server red.
OUTCOME_COLORS: dict[str, str] = {
    "ok": "#009E73",
    "http_error": "#C0392B",
    "rate_limited": "#E69F00",
    "timeout": "#8E44AD",
    "connect_error": "#2C3E50",
    "stream_cut": "#D55E00",
    "stalled": "#56B4E9",
    "malformed": "#CC79A7",
    "aborted": "#95A5A6",
    "truncated": "#A0522D",
    "stream_error": "#7B241C",
    "empty": "#B7950B",
    "overloaded": "#922B21",
    "content_filter": "#1F618D",
    "not_sent": "#000000",
}

# p50 solid and light, p95 the headline, p99 dashed and dark.
PCT_STYLE: dict[str, dict[str, Any]] = {
    "p50": {"color": "#56B4E9", "linestyle": "-", "linewidth": 1.6},
    "p95": {"color": "#0072B2", "linestyle": "-", "linewidth": 2.2},
    "p99": {"color": "#1B2631", "linestyle": "--", "linewidth": 1.4},
}

INJECTED_COLOR = "#C0392B"
ORGANIC_COLOR = "#7F7F7F"
FAULT_SHADE = {"color": "#C0392B", "alpha": 0.10, "linewidth": 0}
SLO_LINE = {"color": "#C0392B", "linestyle": ":", "linewidth": 1.5}
GO_COLOR = "#1E8449"
NOGO_COLOR = "#C0392B"
NA_COLOR = "#7F7F7F"

# Figure sizes in inches at DPI: "wide" time series, "half" for side-by-side, "square" CDFs.
DPI = 110
SIZES: dict[str, tuple[float, float]] = {
    "wide": (10.0, 4.2),
    "tall": (10.0, 6.5),
    "half": (6.2, 4.2),
    "square": (6.2, 5.0),
}

RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#E5E5E5",
    "grid.linewidth": 0.8,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.facecolor": "white",
}


@contextlib.contextmanager
def chart_style() -> Iterator[None]:
    """Apply loadkit's rc settings for the charts drawn inside the block."""
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


def figure(size: str = "wide", nrows: int = 1, ncols: int = 1, **kw: Any) -> tuple[Any, Any]:
    """A (Figure, axes) pair without pyplot; call inside `chart_style()`."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZES[size], layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=True, **kw)
    return fig, axes


def save(fig: Any, path: Path) -> Path:
    """Write a PNG (Agg canvas) and release the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def color_map(names: Iterable[str], palette: Sequence[str] = PALETTE) -> dict[str, str]:
    """Stable colours: names sorted, then palette order (pass the union across runs)."""
    return {n: palette[i % len(palette)] for i, n in enumerate(sorted(set(names)))}


def region_colors(names: Iterable[str]) -> dict[str, str]:
    return color_map(names)


def outcome_color(outcome: str) -> str:
    return OUTCOME_COLORS.get(outcome, "#7F7F7F")


def run_colors(labels: Sequence[str]) -> dict[str, str]:
    """Runs in a comparison keep the order given (pilot first), not sorted."""
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


def title(ax: Any, text: str, subtitle: str | None = None) -> None:
    """Bold title; a grey one-line subtitle (what the reader should take from it) below."""
    ax.set_title(text + ("\n" if subtitle else ""), loc="left")
    if subtitle:
        ax.text(
            0.0,
            1.01,
            subtitle,
            transform=ax.transAxes,
            fontsize=9,
            color="#555555",
            ha="left",
            va="bottom",
        )


def label(quantity: str, unit: str | None = None) -> str:
    """Axis label with its unit: `label("TTFT", "ms")` -> "TTFT (ms)"."""
    return f"{quantity} ({unit})" if unit else quantity


def fmt_usd(v: float | None) -> str:
    if v is None or v != v:
        return "n/a"
    a = abs(v)
    if a >= 1000:
        return f"${v:,.0f}"
    if a >= 1:
        return f"${v:,.2f}"
    if a >= 0.01:
        return f"${v:.4f}"
    return f"${v:.6f}"


def fmt_pct(v: float | None, digits: int = 1) -> str:
    if v is None or v != v:
        return "n/a"
    return f"{100 * v:.{digits}f}%"


def shade_windows(
    ax: Any, windows: Iterable[tuple[float, float, str]], label_them: bool = True
) -> None:
    """Shade (start_s, end_s, name) spans, e.g. fault windows, with their names on top.

    Names of windows that start close together are stacked downwards, not overprinted.
    """
    spans = sorted(windows)
    if not spans:
        return
    lo = min(s for s, _, _ in spans)
    hi = max(e for _, e, _ in spans)
    x0, x1 = ax.get_xlim() if ax.has_data() else (lo, hi)
    width = max(x1 - x0, hi - lo, 1e-9)
    last_x = None
    row = 0
    for i, (start, end, name) in enumerate(spans):
        ax.axvspan(start, end, **FAULT_SHADE, label="fault window" if i == 0 else None)
        if not (label_them and name):
            continue
        row = row + 1 if last_x is not None and start - last_x < 0.12 * width else 0
        last_x = start
        ax.text(
            start,
            1.0 - 0.07 * row,
            f" {name}",
            transform=ax.get_xaxis_transform(),
            fontsize=8,
            color=INJECTED_COLOR,
            va="top",
            ha="left",
        )


def slo_line(ax: Any, value: float | None, text: str = "SLO") -> None:
    """A dotted horizontal line at an SLO limit, labelled at the right."""
    if value is None:
        return
    ax.axhline(value, **SLO_LINE)
    ax.text(
        0.995,
        value,
        f"{text} ",
        transform=ax.get_yaxis_transform(),
        fontsize=8,
        color=SLO_LINE["color"],
        va="bottom",
        ha="right",
    )


def empty(ax: Any, text: str = "no data") -> None:
    """Say so on an empty chart instead of drawing blank axes."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#7F7F7F")
    ax.set_xticks([])
    ax.set_yticks([])
