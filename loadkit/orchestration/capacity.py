"""`loadkit capacity`: step the load until an SLO breaks, then say how much load the service holds.

Each step is a real `loadkit run` (the same `loadkit.orchestration.run.run`) of a derived
scenario: a small YAML file that `extends:` the user's scenario and replaces only its load
with one level held for `--step-duration` (closed loop: users; open loop: session arrivals
per second). Every step gets its own run folder under OUT/steps/, so each can be opened with
`loadkit report` or compared with `loadkit compare`.

A step is judged on its steady part: records sent after the warm-up (users spawning, queues
filling) are checked against every SLO of the scenario with the same evaluation as the
end-of-run summary. The search goes up the levels and stops at the first step that breaks
an SLO; `--bisect N` then tests N loads between the last good and the first bad level.

This module orchestrates runs, so it sits beside `run`, above analysis: it reads the step
run folders and hands numbers to loadkit.analysis and charts to loadkit.report.
"""

from __future__ import annotations

import io
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loadkit.analysis.capacity import CapacityResult, StepResult, conclude
from loadkit.errors import UserError
from loadkit.fmt import fmt_ms
from loadkit.results.run_folder import RunFolder

DEFAULT_STEP_S = 30.0
DEFAULT_MAX_STEPS = 8
DEFAULT_FACTOR = 2.0
WARMUP_SHARE = 0.25  # of each step, discarded as warm-up unless --warmup says otherwise


@dataclass(frozen=True)
class CapacityOptions:
    scenario: Path
    out: Path
    step_duration_s: float = DEFAULT_STEP_S
    levels: tuple[float, ...] | None = None  # explicit loads; else from the scenario
    start: float | None = None  # first load of a geometric series
    factor: float = DEFAULT_FACTOR
    max_steps: int = DEFAULT_MAX_STEPS
    bisect: int = 0
    warmup_s: float | None = None
    peak: float | None = None  # planned peak load; else the scenario's own peak
    yes: bool = False
    processes: int = 1


# -- the plan -------------------------------------------------------------------------------


def load_kind(scenario: Any) -> str:
    """'users' (closed loop) or 'rate' (open loop); trace replay has no load level to step."""
    from loadkit.scenario.model import ClosedLoad, OpenLoad

    if isinstance(scenario.load, ClosedLoad):
        return "users"
    if isinstance(scenario.load, OpenLoad):
        return "rate"
    raise UserError(
        "capacity: a trace replay has no load level to step; use a closed (users) or "
        "open (rate) load scenario, or scale the trace with load.rate_scale"
    )


def planned_peak(scenario: Any) -> float:
    """The scenario's own peak: the most users (or arrivals/s), times the daily curve's peak."""
    kind = load_kind(scenario)
    if kind == "users":
        peak = max((p.users for p in scenario.load.phases), default=0)
    else:
        peak = max((max(p.rate_start, p.rate_end) for p in scenario.load.phases), default=0.0)
    daily = scenario.load.daily
    if daily is not None and daily.hourly:
        peak *= max(daily.hourly)
    return float(peak)


def plan_levels(scenario: Any, opts: CapacityOptions) -> list[float]:
    """Loads to try, ascending: --levels; else the scenario's own steps; else a series.

    A scenario of three or more `step` phases (like scenarios/capacity.yaml) is its own
    plan. Otherwise: from --start (default an eighth of the planned peak) multiplied by
    --factor, --max-steps loads.
    """
    kind = load_kind(scenario)
    integer = kind == "users"
    if opts.levels:
        levels = sorted({_level(x, integer) for x in opts.levels})
    else:
        steps = [p.users for p in scenario.load.phases if p.kind == "step"] if integer else []
        if len(set(steps)) >= 3 and opts.start is None:
            levels = sorted({float(u) for u in steps if u > 0})
        else:
            if opts.factor <= 1:
                raise UserError(f"--factor must be above 1, got {opts.factor:g}")
            peak = opts.peak or planned_peak(scenario)
            start = opts.start or max(1.0 if integer else 0.1, peak / 8.0)
            levels = []
            x = start
            for _ in range(opts.max_steps):
                lv = _level(x, integer)
                if not levels or lv > levels[-1]:
                    levels.append(lv)
                x *= opts.factor
    levels = [lv for lv in levels if lv > 0]
    if not opts.levels:
        levels = levels[: max(opts.max_steps, 1)]
    if not levels:
        raise UserError("capacity: no load level to try (levels must be positive)")
    return levels


def _level(x: float, integer: bool) -> float:
    return float(max(1, round(x))) if integer else round(float(x), 4)


def step_yaml(
    parent: Path,
    step_file: Path,
    kind: str,
    level: float,
    duration_s: float,
    spawn_rate: float | None,
) -> str:
    """A scenario that extends `parent` and holds one load level for the step."""
    rel = os.path.relpath(Path(parent).resolve(), Path(step_file).resolve().parent)
    lines = [
        f"# loadkit capacity step: {level:g} {'users' if kind == 'users' else 'sessions/s'}"
        f" for {duration_s:g}s; everything else from {Path(parent).name}",
        f"extends: {_yaml_str(rel)}",
        # Capacity is measured without injected faults: their windows belong to the
        # parent's timeline, not to a step of a few seconds (run the drill for resilience).
        "faults: []",
        "load:",
        "  daily: null",
    ]
    if kind == "users":
        # Spawn every user within about a second so the steady part starts early.
        rate = max(float(spawn_rate or 0.0), level)
        lines += [
            f"  spawn_rate: {rate:g}/s",
            "  phases:",
            f"    - {{kind: step, users: {int(level)}, for: {duration_s:g}s}}",
        ]
    else:
        lines += ["  phases:", f"    - {{rate: {level:g}/s, for: {duration_s:g}s}}"]
    return "\n".join(lines) + "\n"


def _yaml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- one step -------------------------------------------------------------------------------


def measure_step(
    run_dir: Path,
    slo: Any,
    level: float,
    index: int,
    warmup_s: float,
    end_s: float,
    max_lag_s: float | None = None,
) -> StepResult:
    """Judge a step's run folder on the records sent in [warmup_s, end_s).

    An open-loop step the service did not keep up with (planned arrivals never sent, or
    schedule lag p95 over `max_lag_s`) is a breach whatever the SLOs say: judged on the
    whole step, since the arrivals left waiting are at its end."""
    from loadkit.analysis.requests import logical, started_between
    from loadkit.analysis.slo import goodput as goodput_of
    from loadkit.analysis.slo import limits_from
    from loadkit.analysis.summary import summarize
    from loadkit.results.reader import read_records

    recs = read_records(RunFolder(Path(run_dir)).requests_csv)
    keep = started_between(recs.columns, warmup_s * 1000.0, end_s * 1000.0)
    cols = {name: arr[keep] for name, arr in recs.columns.items()}
    window_s = max(end_s - warmup_s, 1e-9)
    summary = summarize(cols, duration_s=window_s, slo=slo)
    lim = limits_from(slo)
    goodput = goodput_of(logical(cols), lim, window_s)["goodput_per_s"] if lim.any else None
    slo_doc = summary.get("slo") or {"checks": [], "breached": []}
    breached = list(slo_doc["breached"])
    if summary["requests"] == 0:
        breached.append("no requests completed in the steady part")
    offered = step_offered(Path(run_dir), recs.columns, max_lag_s)
    if offered is not None and not offered["kept_up"]:
        breached.append(f"did not keep up with the planned load ({offered['reason']})")
    return StepResult(
        index=index,
        level=level,
        run_dir=str(run_dir),
        ok=not breached,
        breached=tuple(breached),
        checks=tuple(slo_doc["checks"]),
        warmup_s=warmup_s,
        window_s=window_s,
        requests=int(summary["requests"]),
        ok_requests_per_s=float(summary["ok_requests_per_s"]),
        goodput_per_s=goodput,
        output_tokens_per_s=float(summary["output_tokens_per_s"]),
        error_rate=float(summary["error_rate"]),
        ttft_p95_ms=(summary.get("ttft_ms") or {}).get("p95"),
        itl_p95_ms=(summary.get("itl_ms") or {}).get("p95"),
        e2e_p95_ms=(summary.get("e2e_ms") or {}).get("p95"),
        cost_per_ok_request=summary.get("cost_usd_per_ok_request"),
        summary=summary,
        offered=offered,
    )


def step_offered(run_dir: Path, cols: Any, max_lag_s: float | None) -> dict[str, Any] | None:
    """An open-loop step's offered against served (None in closed loop)."""
    import json

    import numpy as np

    from loadkit.analysis.offered import offered
    from loadkit.analysis.requests import logical

    if not np.isfinite(np.asarray(cols["t_intended"], dtype=np.float64)).any():
        return None
    try:
        schedule = json.loads(RunFolder(run_dir).schedule_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        schedule = None
    o = offered(cols, logical(cols), schedule, max_lag_s)
    keys = ("planned", "sent", "not_sent", "served", "planned_per_s", "sent_per_s")
    return {k: o[k] for k in keys} | {
        "served_per_s": o["served_per_s"],
        "sched_lag_p95_ms": o["sched_lag_ms"]["p95"],
        "kept_up": o["kept_up"],
        "reason": o["reason"],
    }


# -- the search -----------------------------------------------------------------------------


def search(
    levels: Sequence[float],
    run_step: Callable[[float, int], StepResult],
    bisect: int = 0,
    integer: bool = True,
    done: list[StepResult] | None = None,
) -> list[StepResult]:
    """Run levels upwards until one breaks an SLO, then bisect `bisect` times below it.

    Returns every step run, in the order run (also appended to `done` as they finish, so
    a caller keeps the finished steps when a later one is interrupted).
    """
    done = [] if done is None else done
    good: float | None = None
    bad: float | None = None
    for level in levels:
        res = run_step(level, len(done) + 1)
        done.append(res)
        if res.ok:
            good = level
        else:
            bad = level
            break
    if bad is None:
        return done
    lo = good if good is not None else 0.0
    hi = bad
    for _ in range(max(0, bisect)):
        mid = _level((lo + hi) / 2.0, integer)
        if mid <= lo or mid >= hi:
            break
        res = run_step(mid, len(done) + 1)
        done.append(res)
        if res.ok:
            lo = mid
        else:
            hi = mid
    return done


# -- orchestration --------------------------------------------------------------------------


class _StepConsole(io.TextIOBase):
    """The runner's console for one step: progress lines shown indented, the rest to a log."""

    def __init__(self, out: IO[str], log: IO[str]):
        self.out = out
        self.log = log
        self._tty = bool(getattr(out, "isatty", lambda: False)())

    def isatty(self) -> bool:
        return self._tty

    def write(self, text: str) -> int:
        self.log.write(text)
        body = text.strip("\r\n")
        if "req/s" in body and "users" in body:
            if self._tty:
                self.out.write("\r    " + body.strip())
            else:
                self.out.write("    " + body.strip() + "\n")
            self.out.flush()
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        self.out.flush()


def run_capacity(opts: CapacityOptions, out: IO[str] | None = None) -> CapacityResult:
    """`loadkit capacity`: run the steps, write OUT/capacity.json, charts and capacity.html."""
    from loadkit.results import run_folder as rf
    from loadkit.scenario import load_scenario

    out = out or sys.stdout
    scenario = load_scenario(opts.scenario)
    kind = load_kind(scenario)
    if not (opts.step_duration_s > 0 and math.isfinite(opts.step_duration_s)):
        raise UserError(f"--step-duration must be positive, got {opts.step_duration_s:g}")
    warmup = opts.warmup_s if opts.warmup_s is not None else WARMUP_SHARE * opts.step_duration_s
    if not 0 <= warmup < opts.step_duration_s:
        raise UserError(
            f"--warmup ({warmup:g}s) must be shorter than --step-duration "
            f"({opts.step_duration_s:g}s)"
        )
    levels = plan_levels(scenario, opts)
    peak = opts.peak if opts.peak is not None else planned_peak(scenario)
    out_dir = Path(opts.out)
    if (out_dir / "capacity.json").exists() or (out_dir / "steps").exists():
        raise UserError(f"--out {out_dir}: already holds a capacity search; choose another folder")
    try:
        (out_dir / "steps").mkdir(parents=True, exist_ok=True)
        (out_dir / "logs").mkdir(exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out_dir}: cannot create it ({exc.strerror})") from None
    unit = "users" if kind == "users" else "sessions/s"
    out.write(
        f"capacity search: {scenario.name}, loads {', '.join(f'{x:g}' for x in levels)} {unit}"
        f" (stops at the first SLO breach), {opts.step_duration_s:g}s per step"
        f" ({warmup:g}s warm-up)\n"
    )
    out.flush()
    spawn = getattr(scenario.load, "spawn_rate", None)

    def run_step(level: float, index: int) -> StepResult:
        return _run_one(opts, scenario, kind, level, index, warmup, spawn, out_dir, out)

    t0 = time.perf_counter()
    steps: list[StepResult] = []
    interrupted = False
    try:
        search(levels, run_step, bisect=opts.bisect, integer=kind == "users", done=steps)
    except KeyboardInterrupt:
        interrupted = True
        out.write("\ninterrupted: reporting the steps that finished\n")
    slo_doc = _slo_doc(scenario.slo)
    result = conclude(scenario.name, kind, steps, peak, slo_doc)
    if steps:
        doc = capacity_json(result, opts, warmup, time.perf_counter() - t0)
        doc["interrupted"] = interrupted
        rf.write_json(out_dir / "capacity.json", doc)
        from loadkit.report.capacity import write_capacity_report

        knee_page = _compare_at_the_knee(result, out_dir)
        if knee_page is not None:
            doc["knee_compare"] = str(knee_page.relative_to(out_dir))
            rf.write_json(out_dir / "capacity.json", doc)
        write_capacity_report(result, out_dir)
        out.write("\n" + format_result(result) + "\n")
        if knee_page is not None:
            out.write(f"past the knee: {knee_page}\n")
        out.write(f"report: {out_dir / 'capacity.html'}\n")
    out.flush()
    if interrupted:
        raise KeyboardInterrupt
    return result


def first_breach(r: CapacityResult) -> StepResult | None:
    """The lowest load above the capacity that broke an SLO."""
    above = [s for s in r.steps if not s.ok and (r.capacity is None or s.level > r.capacity)]
    return min(above, key=lambda s: s.level) if above else None


def _compare_at_the_knee(r: CapacityResult, out_dir: Path) -> Path | None:
    """`loadkit compare` of the capacity step against the first step that broke an SLO:
    what changed past the knee, with CIs (None when there is no such pair)."""
    from loadkit.report.compare import write_compare

    good, bad = r.at_capacity(), first_breach(r)
    if good is None or bad is None:
        return None
    where = out_dir / "knee-compare"
    labels = [f"{good.level:g} {r.unit}", f"{bad.level:g} {r.unit}"]
    try:
        write_compare([Path(good.run_dir), Path(bad.run_dir)], labels, where)
    except (UserError, ValueError):
        return None
    return where / "compare.html"


def _run_one(
    opts: CapacityOptions,
    scenario: Any,
    kind: str,
    level: float,
    index: int,
    warmup: float,
    spawn: float | None,
    out_dir: Path,
    out: IO[str],
) -> StepResult:
    from loadkit.orchestration.run import RunOptions, run

    tag = f"step-{index:02d}-{level:g}{'users' if kind == 'users' else 'rps'}"
    step_file = out_dir / "logs" / f"{tag}.yaml"
    step_file.write_text(
        step_yaml(Path(opts.scenario), step_file, kind, level, opts.step_duration_s, spawn)
    )
    run_dir = out_dir / "steps" / tag
    unit = "users" if kind == "users" else "sessions/s"
    out.write(f"step {index}: {level:g} {unit} for {opts.step_duration_s:g}s -> {run_dir}\n")
    out.flush()
    with open(out_dir / "logs" / f"{tag}.log", "w", encoding="utf-8") as log:
        console = _StepConsole(out, log)
        rc = run(
            RunOptions(scenario=step_file, out=run_dir, yes=opts.yes, processes=opts.processes),
            out=console,  # type: ignore[arg-type]
        )
    if console.isatty():
        out.write("\n")
    if rc == 130:
        raise KeyboardInterrupt
    if not RunFolder(run_dir).requests_csv.exists():
        raise UserError(f"step {index}: the run wrote no records; see {out_dir / 'logs'}/{tag}.log")
    max_lag = getattr(scenario.load, "max_schedule_lag_s", None)
    res = measure_step(
        run_dir, scenario.slo, level, index, warmup, opts.step_duration_s, max_lag_s=max_lag
    )
    out.write("    " + format_step(res, kind) + "\n")
    out.flush()
    return res


def _slo_doc(slo: Any) -> dict[str, Any]:
    return {
        "ttft_ms": dict(slo.ttft_ms),
        "itl_ms": dict(slo.itl_ms),
        "e2e_ms": dict(slo.e2e_ms),
        "error_rate": slo.error_rate,
    }


def format_step(s: StepResult, kind: str) -> str:
    verdict = "met every SLO" if s.ok else "BREACHED " + ", ".join(s.breached)
    o = s.offered
    offered = (
        f"offered {o['planned_per_s'] or 0:.2f}/s, served {o['served_per_s']:.2f}/s, " if o else ""
    )
    return (
        offered + f"{s.ok_requests_per_s:.2f} ok req/s, {s.output_tokens_per_s:.0f} tok/s, "
        f"p95 TTFT {_ms(s.ttft_p95_ms)}, p95 ITL {_ms(s.itl_p95_ms)}, "
        f"errors {100 * s.error_rate:.1f}%: {verdict}"
    )


def _ms(x: float | None) -> str:
    """Always in ms: the steps' figures line up and compare down the table."""
    return fmt_ms(x, seconds=False)


def format_result(r: CapacityResult) -> str:
    lines = [f"{'load':>10} {'ok req/s':>9} {'p95 TTFT':>10} {'p95 ITL':>9} {'errors':>7}  SLO"]
    for s in r.steps:
        lines.append(
            f"{s.level:>10g} {s.ok_requests_per_s:>9.2f} {_ms(s.ttft_p95_ms):>10} "
            f"{_ms(s.itl_p95_ms):>9} {100 * s.error_rate:>6.1f}%  "
            + ("ok" if s.ok else "breached: " + ", ".join(s.breached))
        )
    lines.append("")
    if r.capacity is None:
        lines.append("capacity: no tested load met every SLO")
    else:
        cap = r.at_capacity()
        more = "at least " if r.all_passed else ""
        line = f"capacity: {more}{r.capacity:g} {r.unit} met every SLO"
        if cap is not None:
            line += f" ({cap.ok_requests_per_s:.2f} ok req/s"
            if cap.cost_per_ok_request:  # None or 0: no pricing in the scenario
                line += f", ${cap.cost_per_ok_request:.6f} per successful request"
            line += ")"
        lines.append(line)
    lines.append(f"headroom: {r.headroom}")
    if r.throughput_knee is not None:
        lines.append(f"throughput knee: {r.throughput_knee:g} {r.unit}")
    if r.latency_knee is not None:
        lines.append(f"latency knee (p95 TTFT): {r.latency_knee:g} {r.unit}")
    return "\n".join(lines)


def capacity_json(
    r: CapacityResult, opts: CapacityOptions, warmup: float, elapsed_s: float
) -> dict[str, Any]:
    cap = r.at_capacity()
    return {
        "scenario": r.scenario,
        "load_unit": r.unit,
        "step_duration_s": opts.step_duration_s,
        "warmup_s": warmup,
        "slo": r.slo,
        "capacity": r.capacity,
        "capacity_is_lower_bound": r.all_passed,
        "ok_requests_per_s_at_capacity": cap.ok_requests_per_s if cap else None,
        "cost_usd_per_ok_request_at_capacity": cap.cost_per_ok_request if cap else None,
        "planned_peak": r.planned_peak,
        "peak_over_capacity": (
            round(r.planned_peak / r.capacity, 4) if r.capacity and r.planned_peak else None
        ),
        "headroom": r.headroom,
        "throughput_knee": r.throughput_knee,
        "latency_knee": r.latency_knee,
        "elapsed_s": round(elapsed_s, 1),
        "steps": [s.as_dict() for s in r.steps],
    }
