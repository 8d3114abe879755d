"""Token counts and durations as distributions: a number, `{dist: ...}`, or a trace's column."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loadkit.scenario.build.helpers import _read_trace
from loadkit.scenario.fields import Field, Mapping
from loadkit.workload.distributions import (
    Constant,
    Distribution,
    Empirical,
    LogNormal,
    Normal,
    Uniform,
)
from loadkit.workload.traces import FORMATS

_DIST_KEYS = {
    "constant": ("value",),
    "uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "lognormal": ("median", "p90"),
    "empirical": ("trace", "column", "format", "values"),
}


def distribution(field: Field, unit: str, base_dir: Path) -> Distribution:
    """`unit` is 'tokens' (counts: bare numbers allowed) or 'seconds' (durations)."""
    if field.value.kind == "scalar":
        return Constant(_dist_value(field, unit))
    if not field.is_map:
        field.fail(
            f"expected a number or a distribution like {{dist: lognormal, median: ..., p90: ...}}, "
            f"got {field.what()}"
        )
    kind_f = Mapping(field).get("dist")
    if kind_f is None:
        field.fail("missing required key 'dist' (constant, uniform, normal, lognormal, empirical)")
    kind = kind_f.choice(tuple(_DIST_KEYS))
    allowed = ("dist", *_DIST_KEYS[kind])
    required = () if kind == "empirical" else _DIST_KEYS[kind]
    m = field.mapping(allowed, required=required)
    try:
        if kind == "empirical":
            return _empirical(field, m, unit, base_dir)
        values = [_dist_value(m.req(k), unit) for k in _DIST_KEYS[kind]]
        cls: Callable[..., Distribution] = {
            "constant": Constant,
            "uniform": Uniform,
            "normal": Normal,
            "lognormal": LogNormal,
        }[kind]
        return cls(*values)
    except ValueError as exc:
        field.fail(str(exc))


def _dist_value(field: Field, unit: str) -> float:
    if unit == "seconds":
        return field.duration()
    return field.number(low=0)


def _empirical(field: Field, m: Mapping, unit: str, base_dir: Path) -> Distribution:
    if ("values" in m) == ("trace" in m):
        field.fail("an empirical distribution takes either `values: [...]` or `trace: FILE`")
    if "values" in m:
        items = m.req("values").items(min_len=1)
        return Empirical.from_values([_dist_value(f, unit) for f in items])
    if unit == "seconds":
        m.req("trace").fail("a trace holds token counts, not durations")
    trace_f = m.req("trace")
    path = base_dir / trace_f.string().strip()
    column = m.opt("column", lambda f: f.choice(("input", "output")), None)
    if column is None:
        field.fail("missing required key 'column' (input or output)")
    fmt = m.opt("format", lambda f: f.choice(FORMATS), None)
    trace = _read_trace(trace_f, path, fmt)
    try:
        return Empirical.from_trace(trace, f"{column}_tokens")
    except ValueError as exc:
        trace_f.fail(str(exc))
