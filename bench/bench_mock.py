"""Benchmark: the mock provider against a bare aiohttp SSE server, side by side in one run.

Both servers run as one process pinned to one core; this client runs pinned to the other.
The bare server replays the event bytes and step pattern captured from the mock itself, on
an absolute per-stream schedule, so it is the limit for pacing SSE from one asyncio process.
For each concurrency level (alternating which server goes first) the client keeps that many
streams open, closed-loop, and measures inside a fixed window the SSE events/s delivered,
the pacing error per event (lateness against the stream's own schedule, see
`bench.sse_load_client`), the concurrent open streams, and the server's and client's CPU.

Claim (the issue's targets): highest events/s sustained with pacing p99 < 5 ms, the mock at
least 70% of the bare server's and at least 25,000 events/s on its one core, and 5,000
concurrent open streams held in one mock process. Absolute figures on a shared machine are
noise; the ratio measured in the same run is the claim.

    python -m bench.bench_mock            # full run, a few minutes
    python -m bench.bench_mock --quick    # short run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.sse_load_client import PointResult, PointSpec, run_point
from bench.template import Template, capture_template, synthetic_template
from loadkit.servers import ServerProcess, start_server

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "out" / "bench_mock.json"
PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Targets:
    """The issue's performance targets."""

    pacing_p99_ms: float = 5.0
    ratio: float = 0.70
    events_per_s_per_core: float = 25_000.0
    open_streams: int = 5_000


@dataclass(frozen=True)
class Phase:
    """One pacing setting: both servers are started for it, then the levels are swept."""

    name: str
    step_ms: float
    tokens: int
    levels: tuple[int, ...]
    refine: int


@dataclass(frozen=True)
class RunConfig:
    servers: tuple[str, ...]
    phases: tuple[Phase, ...]
    warmup_s: float
    window_s: float
    max_ramp_s: float
    server_cpu: int | None
    client_cpu: int | None
    model: str
    targets: Targets
    out: Path


# ---------------------------------------------------------------- process environment


def raise_nofile() -> int:
    """Raise RLIMIT_NOFILE to the hard limit; the servers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pick_cpus(server_cpu: int | None, client_cpu: int | None) -> tuple[int | None, int | None]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    s = cpus[0] if server_cpu is None else server_cpu
    c = next(x for x in cpus if x != s) if client_cpu is None else client_cpu
    return s, c


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run the block on `cpu` (children forked inside inherit it), then restore."""
    if cpu is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(pid: int, limit: float = 0.05, max_wait_s: float = 8.0) -> None:
    """Wait until the server has drained the last point's streams (CPU under `limit`)."""
    deadline = time.perf_counter() + max_wait_s
    while time.perf_counter() < deadline:
        c0, t0 = cpu_seconds(pid), time.perf_counter()
        time.sleep(0.3)
        if (cpu_seconds(pid) - c0) / (time.perf_counter() - t0) < limit:
            return


def mock_config(step_ms: float, tokens: int) -> dict[str, Any]:
    """Mock overrides that make it pace every stream at one event per step, nothing else."""
    return {
        "max_num_seqs": 1_000_000,
        "max_waiting": 1_000_000,
        "prefill_overhead_ms": 0,
        "prefill_ms_per_token": 0,
        "decode_step_ms": step_ms,
        "decode_step_ms_per_seq": 0,
        "jitter": 0,
        "output_tokens": {"dist": "constant", "value": tokens},
        "rate_limits": None,
        "latency_scale": 1.0,
    }


def request_body(model: str, tokens: int) -> bytes:
    return json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "Count from one to a hundred, please."}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": tokens,
        }
    ).encode()


# ---------------------------------------------------------------- servers


@dataclass
class Servers:
    procs: dict[str, ServerProcess]
    template: Template


def _child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


def start_servers(cfg: RunConfig, phase: Phase, workdir: Path) -> Servers:
    procs: dict[str, ServerProcess] = {}
    body = request_body(cfg.model, phase.tokens)
    try:
        if "mock" in cfg.servers:
            conf = workdir / f"mock-{phase.name}.json"
            conf.write_text(json.dumps(mock_config(phase.step_ms, phase.tokens)))
            with pinned(cfg.server_cpu):
                procs["mock"] = start_server(
                    "mock", ["mocks", "--port", "0", "--config", str(conf)], env=_child_env()
                )
            template = capture_template(procs["mock"].url + PATH, body, phase.step_ms)
        else:
            template = synthetic_template(phase.tokens, phase.step_ms)
        tpath = workdir / f"template-{phase.name}.json"
        template.save(tpath)
        if "bare" in cfg.servers:
            args = ["bench.bare_sse_server", "--port", "0", "--template", str(tpath)]
            args += ["--step-ms", str(phase.step_ms)]
            with pinned(cfg.server_cpu):
                procs["bare"] = start_server("bare", args, env=_child_env())
    except BaseException:
        for p in procs.values():
            p.stop()
        raise
    return Servers(procs=procs, template=template)


# ---------------------------------------------------------------- one point


def _pct(a: np.ndarray, q: float) -> float:
    return float(np.percentile(a, q)) if a.size else float("nan")


def measure(
    cfg: RunConfig, phase: Phase, servers: Servers, name: str, streams: int
) -> dict[str, Any]:
    proc = servers.procs[name]
    host, port = proc.url.removeprefix("http://").rsplit(":", 1)
    tpl = servers.template
    lifetime_s = (tpl.first_delay_ms + tpl.steps[-1] * phase.step_ms) / 1000.0
    spec = PointSpec(
        host=host,
        port=int(port),
        path=PATH,
        body=request_body(cfg.model, phase.tokens),
        streams=streams,
        step_ms=phase.step_ms,
        steps=tpl.steps,
        ramp_s=min(max(lifetime_s, 0.5), cfg.max_ramp_s),
        warmup_s=cfg.warmup_s,
        window_s=cfg.window_s,
    )
    marks: list[float] = []

    def on_window(_: bool) -> None:
        marks.append(cpu_seconds(proc.process.pid))
        marks.append(time.perf_counter())

    wait_quiet(proc.process.pid)
    r: PointResult = run_point(spec, on_window)
    server_cpu = (marks[2] - marks[0]) / (marks[3] - marks[1]) if len(marks) == 4 else 0.0
    offered = streams * len(tpl.steps) / lifetime_s if lifetime_s > 0 else 0.0
    p99 = _pct(r.lateness_ms, 99)
    client_cpu = r.client_cpu_s / r.window_s if r.window_s else 0.0
    errors = sum(r.errors.values())
    point = {
        "phase": phase.name,
        "server": name,
        "streams": streams,
        "step_ms": phase.step_ms,
        "offered_events_per_s": round(offered, 1),
        "events_per_s": round(r.events_per_s, 1),
        "delivered_ratio": round(r.events_per_s / offered, 4) if offered else 0.0,
        "pacing_p50_ms": round(_pct(r.lateness_ms, 50), 3),
        "pacing_p99_ms": round(p99, 3),
        "pacing_max_ms": round(float(r.lateness_ms.max()) if r.lateness_ms.size else 0.0, 3),
        "gap_error_p99_ms": round(_pct(r.gap_error_ms, 99), 3),
        "open_streams_min": int(r.open_streams.min()) if r.open_streams.size else 0,
        "open_streams_mean": round(float(r.open_streams.mean()), 1) if r.open_streams.size else 0,
        "open_streams_max": int(r.open_streams.max()) if r.open_streams.size else 0,
        "server_cpu": round(server_cpu, 3),
        "client_cpu": round(client_cpu, 3),
        "events_per_server_cpu_s": round(r.events_per_s / server_cpu, 1) if server_cpu else None,
        "completed_streams": r.completed,
        "connects": r.connects,
        "reconnects": r.reconnects,
        "errors": dict(r.errors),
        "client_bound": client_cpu > 0.9,
    }
    point["ok"] = bool(
        r.events > 0
        and p99 < cfg.targets.pacing_p99_ms
        and errors == 0
        and point["open_streams_min"] >= 0.98 * streams
    )
    return point


# ---------------------------------------------------------------- sweep


def sweep(cfg: RunConfig, phase: Phase, servers: Servers, emit) -> list[dict[str, Any]]:
    """Levels in order, servers alternating first; stop a server after two failed levels."""
    points: list[dict[str, Any]] = []
    fails = dict.fromkeys(servers.procs, 0)
    for i, streams in enumerate(phase.levels):
        order = list(servers.procs) if i % 2 == 0 else list(reversed(servers.procs))
        for name in order:
            if fails[name] >= 2:
                continue
            p = measure(cfg, phase, servers, name, streams)
            points.append(p)
            emit(p)
            fails[name] = 0 if p["ok"] else fails[name] + 1
    for _ in range(phase.refine):
        for name in servers.procs:
            mine = [p for p in points if p["server"] == name]
            good = [p["streams"] for p in mine if p["ok"]]
            lo = max(good, default=0)
            bad = [p["streams"] for p in mine if not p["ok"] and p["streams"] > lo]
            if not bad:
                continue
            hi = min(bad)
            mid = int(round((lo + hi) / 2 / 50.0) * 50) or (lo + hi) // 2
            if mid <= lo or mid >= hi or any(p["streams"] == mid for p in mine):
                continue
            p = measure(cfg, phase, servers, name, mid)
            points.append(p)
            emit(p)
    return points


def summarize(cfg: RunConfig, points: list[dict[str, Any]]) -> dict[str, Any]:
    t = cfg.targets
    out: dict[str, Any] = {"best": {}, "hold": {}}
    sweep_phase = cfg.phases[0].name
    for name in cfg.servers:
        mine = [p for p in points if p["server"] == name and p["phase"] == sweep_phase]
        ok = [p for p in mine if p["ok"] and not p["client_bound"]]
        best = max(ok, key=lambda p: p["events_per_s"], default=None)
        eff = [
            p["events_per_server_cpu_s"]
            for p in mine
            if p["events_per_server_cpu_s"] and p["server_cpu"] >= 0.3
        ]
        out["best"][name] = {
            "events_per_s": best["events_per_s"] if best else 0.0,
            "streams": best["streams"] if best else 0,
            "pacing_p99_ms": best["pacing_p99_ms"] if best else None,
            "server_cpu": best["server_cpu"] if best else None,
            "events_per_server_cpu_s_median": round(float(np.median(eff)), 1) if eff else None,
        }
        hold = [p for p in points if p["server"] == name and p["phase"] == "hold"]
        if hold:
            h = hold[-1]
            out["hold"][name] = {
                k: h[k]
                for k in (
                    "streams",
                    "step_ms",
                    "open_streams_min",
                    "open_streams_mean",
                    "events_per_s",
                    "pacing_p50_ms",
                    "pacing_p99_ms",
                    "server_cpu",
                    "ok",
                )
            }
    if "mock" in out["best"] and "bare" in out["best"]:
        m, b = out["best"]["mock"], out["best"]["bare"]
        out["ratio_mock_over_bare"] = (
            round(m["events_per_s"] / b["events_per_s"], 3) if b["events_per_s"] else None
        )
        me, be = m["events_per_server_cpu_s_median"], b["events_per_server_cpu_s_median"]
        out["cpu_efficiency_ratio_mock_over_bare"] = round(me / be, 3) if me and be else None
        mh = out["hold"].get("mock")
        out["targets"] = {
            "ratio_at_least": t.ratio,
            "ratio_met": (out["ratio_mock_over_bare"] or 0) >= t.ratio,
            "events_per_s_per_core_at_least": t.events_per_s_per_core,
            "events_per_s_per_core_met": m["events_per_s"] >= t.events_per_s_per_core,
            "open_streams_at_least": t.open_streams,
            "open_streams_met": bool(mh and mh["open_streams_min"] >= t.open_streams),
            "open_streams_paced_met": bool(
                mh and mh["open_streams_min"] >= t.open_streams and mh["ok"]
            ),
        }
    return out


# ---------------------------------------------------------------- output


COLS = (
    ("phase", "phase", "{}"),
    ("server", "server", "{}"),
    ("streams", "streams", "{}"),
    ("offered/s", "offered_events_per_s", "{:.0f}"),
    ("events/s", "events_per_s", "{:.0f}"),
    ("p50 ms", "pacing_p50_ms", "{:.2f}"),
    ("p99 ms", "pacing_p99_ms", "{:.2f}"),
    ("gap p99", "gap_error_p99_ms", "{:.2f}"),
    ("open min", "open_streams_min", "{}"),
    ("srv cpu", "server_cpu", "{:.2f}"),
    ("cli cpu", "client_cpu", "{:.2f}"),
    ("errors", "errors", "{}"),
    ("ok", "ok", "{}"),
)


def format_row(p: dict[str, Any]) -> str:
    cells = []
    for title, key, fmt in COLS:
        v = p[key]
        if key == "errors":
            v = sum(v.values())
        if key == "ok":
            v = "yes" if v else ("CLIENT" if p["client_bound"] else "no")
        cells.append(fmt.format(v).rjust(max(len(title), 6)))
    return " ".join(cells)


def header() -> str:
    return " ".join(title.rjust(max(len(title), 6)) for title, _, _ in COLS)


def format_summary(s: dict[str, Any], targets: Targets) -> str:
    lines = [f"highest events/s with pacing p99 < {targets.pacing_p99_ms:g} ms (sweep phase):"]
    for name, b in s["best"].items():
        eff = b["events_per_server_cpu_s_median"]
        lines.append(
            f"  {name:5s} {b['events_per_s']:>9.0f} events/s at {b['streams']} streams"
            f" (p99 {b['pacing_p99_ms']} ms, server cpu {b['server_cpu']}),"
            f" {eff if eff else float('nan'):.0f} events per server CPU-second"
        )
    for name, h in s["hold"].items():
        lines.append(
            f"  hold  {name:5s} {h['open_streams_min']} of {h['streams']} streams open (min),"
            f" step {h['step_ms']:g} ms, {h['events_per_s']:.0f} events/s,"
            f" p99 {h['pacing_p99_ms']} ms, ok={h['ok']}"
        )
    if "ratio_mock_over_bare" in s:
        lines.append(
            f"  ratio mock/bare events/s: {s['ratio_mock_over_bare']}"
            f"  (CPU efficiency ratio {s['cpu_efficiency_ratio_mock_over_bare']})"
        )
        lines.append(f"  targets: {json.dumps(s['targets'])}")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> RunConfig:
    ap = argparse.ArgumentParser(prog="bench_mock", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run (about a minute)")
    ap.add_argument("--servers", default="mock,bare", help="comma list of mock,bare")
    ap.add_argument("--step-ms", type=float, default=None, help="sweep pacing (default 40)")
    ap.add_argument("--tokens", type=int, default=None, help="completion tokens per stream")
    ap.add_argument("--levels", default=None, help="comma list of concurrent streams")
    ap.add_argument("--refine", type=int, default=None, help="bisection steps after the sweep")
    ap.add_argument("--hold-streams", type=int, default=5000, help="0 skips the hold phase")
    ap.add_argument("--hold-step-ms", type=float, default=250.0)
    ap.add_argument("--hold-tokens", type=int, default=40)
    ap.add_argument("--warmup", type=float, default=None, help="seconds after the ramp")
    ap.add_argument("--window", type=float, default=None, help="measurement seconds")
    ap.add_argument("--max-ramp", type=float, default=None, help="cap on the start ramp (s)")
    ap.add_argument("--server-cpu", type=int, default=None)
    ap.add_argument("--client-cpu", type=int, default=None)
    ap.add_argument("--model", default="mock-small")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    a = ap.parse_args(argv)
    servers = tuple(s.strip() for s in a.servers.split(",") if s.strip())
    if not servers or set(servers) - {"mock", "bare"}:
        ap.error("--servers takes mock and/or bare")
    q = a.quick
    step = a.step_ms if a.step_ms is not None else 40.0
    tokens = a.tokens if a.tokens is not None else (32 if q else 64)
    default_levels = "250,1000,2000" if q else "250,500,1000,1500,2000,3000,5000"
    levels = tuple(int(x) for x in (a.levels or default_levels).split(","))
    refine = a.refine if a.refine is not None else (0 if q else 2)
    phases = [Phase("sweep", step, tokens, levels, refine)]
    if a.hold_streams > 0:
        phases.append(Phase("hold", a.hold_step_ms, a.hold_tokens, (a.hold_streams,), 0))
    s_cpu, c_cpu = pick_cpus(a.server_cpu, a.client_cpu)
    return RunConfig(
        servers=servers,
        phases=tuple(phases),
        warmup_s=a.warmup if a.warmup is not None else (0.5 if q else 1.0),
        window_s=a.window if a.window is not None else (3.0 if q else 8.0),
        max_ramp_s=a.max_ramp if a.max_ramp is not None else (2.0 if q else 5.0),
        server_cpu=s_cpu,
        client_cpu=c_cpu,
        model=a.model,
        targets=Targets(),
        out=a.out,
    )


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    nofile = raise_nofile()
    need = max(max(p.levels) for p in cfg.phases) + 64
    if nofile < need:
        print(f"warning: RLIMIT_NOFILE is {nofile}, {need} needed", file=sys.stderr)
    points: list[dict[str, Any]] = []
    phases_meta: list[dict[str, Any]] = []

    def emit(p: dict[str, Any]) -> None:
        print(format_row(p), flush=True)

    print(
        f"server cpu {cfg.server_cpu}, client cpu {cfg.client_cpu}, "
        f"window {cfg.window_s:g}s, RLIMIT_NOFILE {nofile}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench_mock_") as tmp, pinned(cfg.client_cpu):
        for phase in cfg.phases:
            servers = start_servers(cfg, phase, Path(tmp))
            try:
                tpl = servers.template
                phases_meta.append(
                    {
                        **asdict(phase),
                        "events_per_stream": len(tpl.steps),
                        "steps_per_stream": tpl.steps[-1],
                        "event_bytes_mean": round(
                            sum(len(e) for e in tpl.events) / len(tpl.events), 1
                        ),
                        "first_delay_ms": tpl.first_delay_ms,
                        "template_source": tpl.source,
                    }
                )
                print(
                    f"\n[{phase.name}] step {phase.step_ms:g} ms, {len(tpl.steps)} events/stream"
                    f" ({tpl.source} template), servers {', '.join(servers.procs)}"
                )
                print(header(), flush=True)
                points += sweep(cfg, phase, servers, emit)
            finally:
                for p in servers.procs.values():
                    p.stop()
    summary = summarize(cfg, points)
    print()
    print(format_summary(summary, cfg.targets))
    doc = {
        "benchmark": "bench_mock",
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "meta": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus_visible": len(os.sched_getaffinity(0)),
            "server_cpu": cfg.server_cpu,
            "client_cpu": cfg.client_cpu,
            "nofile": nofile,
            "warmup_s": cfg.warmup_s,
            "window_s": cfg.window_s,
            "targets": asdict(cfg.targets),
            "servers": list(cfg.servers),
        },
        "phases": phases_meta,
        "points": points,
        "summary": summary,
    }
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(doc, indent=2))
    print(f"\nwrote {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
