"""`load:` (closed users, open arrivals, trace replay) and the run's `duration`."""

from __future__ import annotations

import math
from pathlib import Path

from loadkit.scenario import units
from loadkit.scenario.build.helpers import _read_trace
from loadkit.scenario.fields import Field, Mapping
from loadkit.scenario.model import (
    DEFAULT_MAX_SCHEDULE_LAG_S,
    ClosedLoad,
    DailyCurveSpec,
    Load,
    OpenLoad,
    RatePhase,
    TraceLoad,
    UserPhase,
)
from loadkit.workload.traces import FORMATS

MAX_PHASES = 1_000  # keeps validation and the plan quick; a day's shape is `daily:`


def _load(field: Field, base_dir: Path) -> tuple[Load, float | None]:
    kind_f = Mapping(field).get("type") if field.is_map else None
    if kind_f is None:
        if not field.is_map:
            field.fail(f"expected a mapping with `type: closed | open | trace`, got {field.what()}")
        field.fail("missing required key 'type' (closed: users, open: arrival rate, trace: replay)")
    kind = kind_f.choice(("closed", "open", "trace"))
    if kind == "closed":
        m = field.mapping(("type", "phases", "spawn_rate", "daily"), required=("phases",))
        phases = _user_phases(m.req("phases"))
        load: Load = ClosedLoad(
            phases=phases,
            spawn_rate=m.opt("spawn_rate", _positive_rate, 0.0),
            daily=m.opt("daily", _daily, None),
        )
        return load, sum(p.duration_s for p in phases)
    if kind == "open":
        m = field.mapping(
            ("type", "phases", "process", "cv", "max_in_flight", "max_schedule_lag", "daily"),
            required=("phases",),
        )
        phases_o = _rate_phases(m.req("phases"))
        process = m.opt("process", lambda f: f.choice(("poisson", "constant", "gamma")), "poisson")
        cv = m.opt("cv", lambda f: f.number(low=0, high=100, low_open=True), None)
        if cv is not None and process != "gamma":
            m.req("cv").fail("only for process: gamma (poisson has cv 1, constant has cv 0)")
        if process == "gamma" and cv is None:
            field.fail("missing required key 'cv' (gamma arrivals need a coefficient of variation)")
        default_cv = {"poisson": 1.0, "constant": 0.0, "gamma": cv or 1.0}[process]
        load = OpenLoad(
            phases=phases_o,
            process=process,  # type: ignore[arg-type]
            cv=default_cv,
            max_in_flight=m.opt("max_in_flight", lambda f: f.integer(low=1, high=1_000_000), 1000),
            max_schedule_lag_s=m.opt("max_schedule_lag", _max_lag, DEFAULT_MAX_SCHEDULE_LAG_S),
            daily=m.opt("daily", _daily, None),
        )
        return load, sum(p.duration_s for p in phases_o)
    m = field.mapping(
        (
            "type",
            "format",
            "path",
            "time_scale",
            "rate_scale",
            "window",
            "max_schedule_lag",
            "daily",
        ),
        required=("format", "path"),
    )
    if "daily" in m:
        m.req("daily").fail(
            "a trace carries its own timing; daily curves apply to closed and open load"
        )
    fmt = m.req("format").choice(FORMATS)
    path_f = m.req("path")
    path = (base_dir / path_f.string().strip()).resolve()
    trace = _read_trace(path_f, path, fmt)
    time_scale = m.opt("time_scale", lambda f: f.number(low=0, high=1e6, low_open=True), 1.0)
    rate_scale = m.opt("rate_scale", lambda f: f.number(low=0, high=1000, low_open=True), 1.0)
    window = m.opt("window", _window, None)
    span = float(trace.t_s[-1]) if len(trace.t_s) else 0.0
    if window is not None:
        if window[0] >= span:
            m.req("window").fail(
                f"starts at {units.fmt_duration(window[0])}, after the trace ends "
                f"({units.fmt_duration(span)})"
            )
        span = min(window[1], span) - window[0]
    load = TraceLoad(
        format=fmt,
        path=path,
        time_scale=time_scale,
        rate_scale=rate_scale,
        window=window,
        max_schedule_lag_s=m.opt("max_schedule_lag", _max_lag, DEFAULT_MAX_SCHEDULE_LAG_S),
    )
    return load, float(max(math.ceil(span / time_scale), 1))


def _max_lag(field: Field) -> float:
    """The schedule lag p95 past which the service did not keep up (> 0, at most an hour)."""
    return field.duration(positive=True, max_s=3600.0)


def _positive_rate(field: Field) -> float:
    rate = field.rate()
    if rate <= 0:
        field.fail(f"must be more than 0, got {units.describe(field.raw())}")
    return rate


def _phase_items(field: Field) -> list[Field]:
    items = field.items(min_len=1)
    if len(items) > MAX_PHASES:
        field.fail(
            f"at most {MAX_PHASES:,} phases, got {len(items):,} (for a daily shape use "
            "`daily:`, to replay recorded traffic use a trace)"
        )
    return items


def _user_phases(field: Field) -> tuple[UserPhase, ...]:
    phases: list[UserPhase] = []
    level: int | None = None
    for item in _phase_items(field):
        m = item.mapping(("kind", "users", "for"), required=("kind", "for"))
        kind = m.req("kind").choice(("ramp", "hold", "spike", "step"))
        dur = m.req("for").duration(positive=True)
        users_f = m.get("users")
        if users_f is None:
            if kind != "hold":
                item.fail(f"missing required key 'users' (how many users the {kind} goes to)")
            if level is None:
                item.fail("missing required key 'users' (no earlier phase sets a level to hold)")
            users = level
        else:
            users = users_f.integer(low=0, high=1_000_000)
        phases.append(UserPhase(kind=kind, duration_s=dur, users=users))  # type: ignore[arg-type]
        if kind != "spike":
            level = users
    if max(p.users for p in phases) == 0:
        field.fail("no phase has any users")
    return tuple(phases)


def _rate_phases(field: Field) -> tuple[RatePhase, ...]:
    phases: list[RatePhase] = []
    for item in _phase_items(field):
        m = item.mapping(("rate", "from", "to", "for"), required=("for",))
        dur = m.req("for").duration(positive=True)
        if "rate" in m:
            if "from" in m or "to" in m:
                item.fail("give either `rate` (steady) or `from` and `to` (a ramp), not both")
            start = end = m.req("rate").rate()
        elif "from" in m and "to" in m:
            start, end = m.req("from").rate(), m.req("to").rate()
        else:
            item.fail("missing `rate: 10/s` (steady) or `from: 1/s` and `to: 10/s` (a ramp)")
        phases.append(RatePhase(duration_s=dur, rate_start=start, rate_end=end))
    if all(p.rate_start == 0 and p.rate_end == 0 for p in phases):
        field.fail("every phase has rate 0; nothing would be sent")
    return tuple(phases)


def _window(field: Field) -> tuple[float, float]:
    items = field.items(min_len=2, max_len=2)
    start, end = items[0].duration(), items[1].duration()
    if end <= start:
        items[1].fail(
            f"the window must end after it starts ({units.fmt_duration(start)}), "
            f"got {units.describe(items[1].raw())}"
        )
    return start, end


def _daily(field: Field) -> DailyCurveSpec:
    from loadkit.workload.daily import DailyCurve, named_curve, shape_names

    m = field.mapping(("curve", "hourly", "start_utc_hour"))
    if ("curve" in m) == ("hourly" in m):
        field.fail("give either `curve: <name>` or `hourly: [24 values]`")
    start = m.opt("start_utc_hour", lambda f: f.number(low=0, high=24, high_open=True), 0.0)
    if "curve" in m:
        name = m.req("curve").choice(shape_names())
        return DailyCurveSpec(hourly=named_curve(name).hourly, start_utc_hour=start, name=name)
    hourly_f = m.req("hourly")
    items = hourly_f.items()
    if len(items) != 24:
        hourly_f.fail(f"expected 24 hourly values (local hours 0-23), got {len(items)}")
    values = [f.number(low=0) for f in items]
    try:
        curve = DailyCurve(tuple(values))
    except ValueError as exc:
        hourly_f.fail(str(exc))
    return DailyCurveSpec(hourly=curve.hourly, start_utc_hour=start, name=None)


def _duration(top: Mapping, load: Load, load_duration: float | None) -> float:
    dur_f = top.get("duration")
    if dur_f is None:
        if load_duration is None:  # pragma: no cover - every load kind gives one
            top.field.fail("missing required key 'duration'")
        return load_duration
    duration = dur_f.duration(positive=True)
    if isinstance(load, TraceLoad):
        return duration
    if load_duration is not None and abs(duration - load_duration) > 1e-6:
        dur_f.fail(
            f"{units.fmt_duration(duration)} does not match the load phases, which add up to "
            f"{units.fmt_duration(load_duration)} (fix a phase or drop `duration`)"
        )
    return duration
