"""The plan as text a person can read: header, timeline, phases, faults, traffic, cost, SLOs."""

from __future__ import annotations

import json
import os

import numpy as np

from loadkit.scenario import bridge
from loadkit.scenario.model import ClosedLoad, OpenLoad, Scenario, TraceLoad
from loadkit.scenario.plan import Cell, ScenarioPlan
from loadkit.scenario.units import fmt_duration, fmt_rate

WIDTH = 60
BARS = " ▁▂▃▄▅▆▇█"


def render(scenario: Scenario, plan: ScenarioPlan, shown_path: str = "") -> str:
    out: list[str] = []
    add = out.append
    s = scenario
    add(f"scenario  {s.name}" + (f" — {s.description}" if s.description else ""))
    if shown_path:
        add(f"file      {shown_path}")
    add(f"target    {_target(s)}")
    add(f"run       {fmt_duration(s.duration_s)}, seed {s.seed}, {_load_line(s)}")
    add("")
    add(from_timeline(s))
    add("")
    add("phases")
    for line in _phases(s):
        add(f"  {line}")
    add("")
    add("faults" if s.faults else "faults    none")
    for f in s.faults:
        where = ", ".join(
            f"{k}={v}"
            for k, v in (
                ("region", f.where.region),
                ("workload", f.where.workload),
                ("model", f.where.model),
                ("path", f.where.path),
            )
            if v
        )
        params = ", ".join(f"{k}={_num(v)}" for k, v in f.params.items())
        add(
            f"  {_span(f.at_s, f.end_s):<17} {f.id:<14} {f.kind:<15} "
            f"{where or 'all requests'}; {f.rate:.0%} hit" + (f"; {params}" if params else "")
        )
    if s.abort is not None:
        add(f"  abort: {_abort(s)}")
    add("")
    add("expected traffic (an estimate)")
    add(f"  {plan.assumption}")
    add(_table(s, plan))
    add("")
    add(f"cost      {_cost(s, plan)}")
    add(f"budget    {_budget(s, plan)}")
    add(f"slo       {_slo(s)}")
    add(f"client    {_client(s)}")
    add(f"requests  {_requests(s)}")
    return "\n".join(out)


def _requests(s: Scenario) -> str:
    """The prompt-cache mode and each workload's extra request fields."""
    cache = (
        "prompt cache cold (prompts salted per run after the system prefix)"
        if s.prompt_cache == "cold"
        else "prompt cache warm (no salt: a rerun may be served from the server's cache)"
    )
    extra = [
        f"{w.name} adds " + json.dumps(dict(w.extra_body), separators=(", ", ": "))
        for w in s.workloads
        if w.extra_body
    ]
    return "; ".join([cache, *extra])


# -- header -----------------------------------------------------------------------------------


def _target(s: Scenario) -> str:
    t = s.target
    if t.kind == "mock":
        extra = f" with overrides {', '.join(t.mock_overrides)}" if t.mock_overrides else ""
        text = f"bundled mock, profile {t.mock_profile}{extra}, model {t.model}"
    else:
        if t.api_key_env:
            state = "set" if os.environ.get(t.api_key_env) else "not set in this shell"
            key = f", key from ${t.api_key_env} ({state})"
        else:
            key = ", no API key"
        text = f"{t.base_url}, model {t.model}{key}"
    if t.region_endpoints:
        text += "; per-region endpoints: " + ", ".join(t.region_endpoints)
    return text


def _load_line(s: Scenario) -> str:
    load = s.load
    if isinstance(load, ClosedLoad):
        peak = max(p.users for p in load.phases)
        text = f"closed loop, peak {peak} users"
        if load.spawn_rate:
            text += f", spawning {fmt_rate(load.spawn_rate).replace('/', ' users/')}"
    elif isinstance(load, OpenLoad):
        peak = max(max(p.rate_start, p.rate_end) for p in load.phases)
        proc = load.process + (f" (cv {load.cv:g})" if load.process == "gamma" else "")
        text = (
            f"open loop, {proc} session arrivals up to {fmt_rate(peak)}, "
            f"at most {load.max_in_flight} in flight"
        )
    else:
        text = f"replay of {load.path.name} ({load.format} format), {load.time_scale:g}x speed"
        if load.rate_scale != 1:
            text += f", {load.rate_scale:g}x requests"
        if load.window:
            text += f", window {_span(*load.window)}"
    if load.daily is not None:
        name = load.daily.name or "custom"
        text += (
            f"; daily curve '{name}' from {load.daily.start_utc_hour:05.2f} UTC, "
            f"24 h compressed into {fmt_duration(s.duration_s)}"
        ).replace(".00 UTC", ":00 UTC")
    return text


# -- timeline -----------------------------------------------------------------------------------


def from_timeline(s: Scenario) -> str:
    """Sparklines over the run: load level, each region's daily factor, fault windows."""
    dur = s.duration_s
    t = (np.arange(WIDTH) + 0.5) * dur / WIDTH
    col = fmt_duration(dur / WIDTH)
    end = fmt_duration(dur)
    lines = [f"timeline    0s {'─' * (WIDTH - 4 - len(end))} {end}   (one column = {col})"]
    load = s.load
    if isinstance(load, ClosedLoad):
        level = np.array([bridge.users_at(load, x) for x in t])
        label, top = "users", f"max {level.max():.0f}"
    elif isinstance(load, OpenLoad):
        level = np.asarray(bridge.rate_curve(load).rate(t), dtype=np.float64)
        label, top = "rate", f"max {fmt_rate(float(level.max()))}"
    else:
        level = _trace_histogram(s)
        label, top = "arrivals", f"max {level.max():.0f} per column"
    lines.append(f"  {label:<10}{_spark(level)}  {top}")
    clock = bridge.day_clock(s)
    if clock is not None:
        for r in bridge.region_loads(s):
            m = r.multiplier(t, clock)
            lines.append(f"  {r.name[:10]:<10}{_spark(m)}  daily x{m.min():.2f}..x{m.max():.2f}")
        hours = clock.utc_hour(t)
        ticks = "".join(
            "|" if i == 0 or int(hours[i]) // 6 != int(hours[i - 1]) // 6 else " "
            for i in range(WIDTH)
        )
        lines.append(f"  {'UTC':<10}{ticks}  (| at 00, 06, 12, 18 h)")
    for f in s.faults:
        inside = (t + dur / WIDTH / 2 > f.at_s) & (t - dur / WIDTH / 2 < f.end_s)
        bar = "".join("█" if x else "·" for x in inside)
        lines.append(f"  {f.id[:10]:<10}{bar}  {f.kind}")
    return "\n".join(lines)


def _trace_histogram(s: Scenario) -> np.ndarray:
    from loadkit.scenario.plan import _trace

    trace = _trace(s)
    counts, _ = np.histogram(trace.t_s, bins=WIDTH, range=(0.0, s.duration_s))
    return counts.astype(np.float64) * (s.load.rate_scale if isinstance(s.load, TraceLoad) else 1)


def _spark(values: np.ndarray) -> str:
    v = np.asarray(values, dtype=np.float64)
    top = float(v.max()) if v.size else 0.0
    if top <= 0:
        return " " * v.size
    idx = np.clip(np.ceil(v / top * (len(BARS) - 1)), 0, len(BARS) - 1).astype(int)
    return "".join(BARS[i] for i in idx)


def _phases(s: Scenario) -> list[str]:
    load = s.load
    lines = []
    t = 0.0
    if isinstance(load, ClosedLoad):
        for p in load.phases:
            verb = {
                "ramp": f"ramp to {p.users} users",
                "hold": f"hold {p.users} users",
                "step": f"step to {p.users} users",
                "spike": f"spike to {p.users} users, then back",
            }[p.kind]
            lines.append(f"{_span(t, t + p.duration_s):<17} {verb}")
            t += p.duration_s
    elif isinstance(load, OpenLoad):
        for p in load.phases:
            if p.rate_start == p.rate_end:
                verb = f"{fmt_rate(p.rate_start)} session arrivals"
            else:
                verb = f"{fmt_rate(p.rate_start)} → {fmt_rate(p.rate_end)} session arrivals"
            lines.append(f"{_span(t, t + p.duration_s):<17} {verb}")
            t += p.duration_s
    else:
        lines.append(f"{_span(0, s.duration_s):<17} replay trace rows at their (scaled) times")
    return lines


def _span(a: float, b: float) -> str:
    return f"{fmt_duration(a)} → {fmt_duration(b)}"


def _num(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# -- traffic table -------------------------------------------------------------------------------


def _table(s: Scenario, plan: ScenarioPlan) -> str:
    nums = (
        f"{'sessions':>10}{'requests':>10}{'prompt tok':>12}{'cached':>11}"
        f"{'output tok':>12}{'cost USD':>11}"
    )
    rows = [f"  {'region':<12}{'share':>7}{'UTC':>6}{'RTT':>7}" + nums]
    for r in s.regions:
        c = plan.total("region", r.name)
        rows.append(
            f"  {r.name:<12}{r.share:>7.0%}{r.utc_offset_h:>+6g}{r.rtt_ms:>5.0f}ms" + _cells(c)
        )
    rows.append(f"  {'workload':<12}{'weight':>7}{'kind':>13}" + nums)
    weights = sum(w.weight for w in s.workloads)
    for w in s.workloads:
        c = plan.total("workload", w.name)
        rows.append(f"  {w.name:<12}{w.weight / weights:>7.0%}{w.kind:>13}" + _cells(c))
    rows.append(f"  {'total':<12}{'':>20}" + _cells(plan.total()))
    return "\n".join(rows)


def _cells(c: Cell) -> str:
    cost = "-" if c.cost_usd is None else f"{c.cost_usd:,.4f}"
    return (
        f"{_count(c.sessions):>10}{_count(c.requests):>10}{_count(c.prompt_tokens):>12}"
        f"{_count(c.cached_tokens):>11}{_count(c.output_tokens):>12}{cost:>11}"
    )


def _count(x: float) -> str:
    """Readable in a narrow column: 9,999 then 12.3k, 4.56M, 1.23G."""
    if x < 10_000:
        return f"{x:,.0f}"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.3g}{suffix}" if x / div < 1000 else f"{x / div:,.0f}{suffix}"
    return f"{x:,.0f}"  # pragma: no cover


# -- cost, budget, slo, client ---------------------------------------------------------------


def _cost(s: Scenario, plan: ScenarioPlan) -> str:
    if s.pricing is None:
        return f"no price for model {s.target.model!r} (add `pricing:` to estimate cost)"
    total = plan.total()
    p = s.pricing.price
    cached = "-" if p.cached_input_per_1m is None else f"${p.cached_input_per_1m:g}"
    text = (
        f"${total.cost_usd or 0:,.4f} estimated for {total.requests:,.0f} requests "
        f"(${(total.cost_usd or 0) / max(total.requests, 1):.6f} per request); priced as "
        f"{s.pricing.model}: ${p.input_per_1m:g} in / {cached} cached / ${p.output_per_1m:g} out "
        f"per 1M tokens"
    )
    if p.checked:
        text += f" (table, checked {p.checked})"
    elif p.source == "scenario":
        text += " (set in the scenario)"
    if s.pricing.regional_uplift:
        text += "; uplift " + ", ".join(f"{k} x{v:g}" for k, v in s.pricing.regional_uplift.items())
    return text


def _budget(s: Scenario, plan: ScenarioPlan) -> str:
    b = s.budget
    parts = []
    total = plan.total()
    if b.max_usd is not None:
        share = (total.cost_usd or 0) / b.max_usd
        warn = "  ⚠ the estimate exceeds it: the run will stop early" if share > 1 else ""
        parts.append(f"max ${b.max_usd:,.2f} (estimate is {share:.0%}){warn}")
    if b.max_requests is not None:
        share = total.requests / b.max_requests
        warn = "  ⚠ the estimate exceeds it: the run will stop early" if share > 1 else ""
        parts.append(f"max {b.max_requests:,} requests (estimate is {share:.0%}){warn}")
    return "; ".join(parts) if parts else "none"


def _abort(s: Scenario) -> str:
    a = s.abort
    assert a is not None
    parts = [f"TTFT {pct} > {fmt_duration(ms / 1000)}" for pct, ms in a.ttft_ms.items()]
    if a.error_rate is not None:
        parts.insert(0, f"errors > {a.error_rate:.0%}")
    return (
        f"stop the run when {' or '.join(parts)} over the last {fmt_duration(a.window_s)} "
        f"(at least {a.min_requests} attempts)"
    )


def _slo(s: Scenario) -> str:
    parts = []
    for label, table in (("TTFT", s.slo.ttft_ms), ("ITL", s.slo.itl_ms), ("E2E", s.slo.e2e_ms)):
        for pct, ms in table.items():
            parts.append(f"{label} {pct} ≤ {fmt_duration(ms / 1000)}")
    if s.slo.error_rate is not None:
        parts.append(f"errors ≤ {s.slo.error_rate:.2%}")
    return "; ".join(parts) if parts else "none (goodput counts every successful request)"


def _client(s: Scenario) -> str:
    c = s.client
    t, r = c.timeouts, c.retries
    statuses = _statuses(r.retry_on_status)
    text = (
        f"timeouts connect {fmt_duration(t.connect_s)}, first token "
        f"{fmt_duration(t.first_token_s)}, between tokens {fmt_duration(t.between_tokens_s)}, "
        f"total {fmt_duration(t.total_s)}; {r.max_retries} retries "
        f"({fmt_duration(r.backoff_initial_s)} doubling to {fmt_duration(r.backoff_max_s)}, "
        f"{r.jitter:.0%} jitter{', honours retry-after' if r.honour_retry_after else ''}) "
        f"on {statuses}"
    )
    if c.failover:
        text += f"; failover to {' → '.join(c.failover)}"
    if c.max_concurrency:
        text += f"; at most {c.max_concurrency} requests in flight"
    return text


def _statuses(codes: tuple[int, ...]) -> str:
    parts = []
    rest = set(codes)
    for base in (400, 500):
        block = set(range(base, base + 100))
        if block <= rest:
            parts.append(f"{base // 100}xx")
            rest -= block
    return ", ".join([*map(str, sorted(rest)), *parts]) or "nothing"
