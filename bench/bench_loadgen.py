"""One Locust load-generator process against the mock: loadkit's users vs the plain ceiling.

In one run, against one mock (its profile made flat: fixed output length, fixed decode step
that does not grow with the number of streams, no jitter, no rate limit, no prefix cache,
a slot for every stream, so its own pacing stays accurate), for each number of users in a
sweep, the same number of Locust users stream chat completions back to back, in
alternating rounds:

- ceiling: a plain Locust `FastHttpUser` that posts the request and only reads the body;
- loadkit: the closed-loop user class `loadkit run` uses (SSE timed as bytes arrive, chunk
  parsing, one record per attempt to requests.csv, live TTFT/ITL rows in Locust's stats).

The mock is pinned to one core and the Locust process to another (when there are two).
Figures per round, over the steady window (after all users are running): streamed requests
and content events consumed per CPU-second of the load-generator process (work per core),
the same per wall second, and for loadkit the TTFT error of the requests sent in that
window: measured TTFT minus the mock's `x-mock-ttft-ms`. That ground truth runs from the
mock's receipt of the request to the moment it writes the first token, so the error holds
the loopback both ways, the mock's lag in taking the request, and what the client adds
between starting its clock and sending, and between the bytes' arrival and its timestamp
(the kernel's receive time where the OS gives it, loadkit.traffic.rxstamp). To tell them
apart each round also reports how late a 5 ms timer fires in the client (its event-loop
lag), its garbage-collection pauses, the mock's CPU share and what the rest of the machine
used; and before the sweep, the floor: one stream at a time, a raw socket's TTFT error
(loopback and the mock alone) beside the LLM client's (bench/loadgen_floor.py).
The claim is the ratio loadkit / ceiling of events per CPU-second, measured side by side.

    python -m bench.bench_loadgen [--users 10,100,250,500,1000] [--seconds 20] [--rounds 2]
                                  [--step-ms 100] [--tokens 32] [--floor-requests 200]
                                  [--out bench/out/loadgen.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.bench_mock import cpu_seconds, machine_busy_s, mock_config, pick_cpus, raise_nofile
from loadkit.serving.launch import running_server

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "loadgen_locustfile.py"
TARGET_RATIO = 0.70
TARGET_TTFT_ERR_P99_MS = 2.0
TARGET_STREAMS = 1000
STEADY_FROM_S = 6.0  # users are all spawned within 4 s, and send within 1 s of it
PREFILL_MS = 20.0  # a fixed, known TTFT for the TTFT-error measurement


def bench_scenario(tokens: int) -> dict[str, Any]:
    return {
        "name": "bench-loadgen",
        "seed": 1,
        "target": {"mock": "hosted-api", "model": "gpt-4o-mini"},
        "regions": [{"name": "local", "share": "100%"}],
        "workloads": [
            {
                "name": "chat",
                "kind": "chat",
                "prompt_tokens": 40,
                "output_tokens": tokens,
                "max_tokens": tokens,
                "stream": True,
            }
        ],
        "load": {"type": "closed", "phases": [{"kind": "hold", "users": 1, "for": "10s"}]},
    }


def _running_streams(url: str) -> float | None:
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("vllm:num_requests_running"):
            return float(line.split()[-1])
    return None


def _pcts(values: np.ndarray, qs: tuple[int, ...]) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(values, q)), 3) for q in qs}


class _Usage:
    """CPU of the mock, the Locust process and the whole machine between two marks."""

    def __init__(self, mock_pid: int, gen_pid: int) -> None:
        self.pids = (mock_pid, gen_pid)
        self.marks: list[tuple[float, float, float, float]] = []

    def mark(self) -> None:
        try:
            mock, gen = (cpu_seconds(p) for p in self.pids)
        except OSError:
            return
        self.marks.append((time.perf_counter(), mock, gen, machine_busy_s()))

    def shares(self) -> dict[str, float]:
        if len(self.marks) < 2:
            return {}
        (t0, m0, g0, b0), (t1, m1, g1, b1) = self.marks[0], self.marks[-1]
        wall = t1 - t0
        other = (b1 - b0) - (m1 - m0) - (g1 - g0)
        return {
            "mock_cpu_share": round((m1 - m0) / wall, 3),
            "other_cpu_share": round(max(other, 0.0) / wall, 3),
        }


def run_round(
    mode: str,
    url: str,
    users: int,
    seconds: float,
    tokens: int,
    work: Path,
    k: int,
    mock_pid: int,
    cpu: int | None,
) -> dict[str, Any]:
    out = work / f"{mode}-{users}-{k}.json"
    env = {
        **os.environ,
        "BENCH_MODE": mode,
        "BENCH_URL": url,
        "BENCH_OUT": str(out),
        "BENCH_TOKENS": str(tokens),
        "BENCH_SCENARIO": str(work / "scenario.yaml"),
        "BENCH_RECORDS": str(work / f"requests-{users}-{k}.csv"),
    }
    spawn_rate = max(users / 4.0, 1.0)  # all users within 4 s
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "-u", str(users), "-r", f"{spawn_rate:g}", "-t", f"{seconds:g}s",
        "--stop-timeout", "0", "--exit-code-on-error", "0", "--loglevel", "WARNING",
    ]  # fmt: skip
    pin = None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, preexec_fn=pin)  # fmt: skip
    usage = _Usage(mock_pid, proc.pid)
    t_start = time.perf_counter()
    time.sleep(min(STEADY_FROM_S, seconds / 2))
    usage.mark()
    time.sleep(max(t_start + seconds * 0.6 - time.perf_counter(), 0.0))
    # the most streams open at once over ten looks 0.1 s apart (a user between two
    # requests holds none for a moment)
    looks = []
    for _ in range(10):
        looks.append(_running_streams(url))
        time.sleep(0.1)
    running = max((n for n in looks if n is not None), default=None)
    time.sleep(max(t_start + seconds - 1.0 - time.perf_counter(), 0.0))
    usage.mark()
    _, err = proc.communicate(timeout=seconds + 120)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"{mode} round failed (exit {proc.returncode}):\n{err[-3000:]}")
    data = json.loads(out.read_text())
    samples = np.asarray(data["samples"], dtype=np.float64)
    # Steady window: from STEADY_FROM_S to the last sample.
    t = samples[:, 0] - samples[0, 0]
    lo = int(np.searchsorted(t, STEADY_FROM_S))
    hi = len(samples) - 1
    if hi - lo < 3:
        raise SystemExit(f"{mode}: run too short for a steady window ({len(samples)} samples)")
    d = samples[hi] - samples[lo]
    wall, cpu_s, reqs, evs = d
    t_lo, t_hi = samples[lo, 0], samples[hi, 0]

    def in_window(when: np.ndarray) -> np.ndarray:
        return (when >= t_lo) & (when <= t_hi)

    res: dict[str, Any] = {
        "mode": mode,
        "users": users,
        "streams_running_mid_run": running,
        "window_s": round(float(wall), 3),
        "cpu_s": round(float(cpu_s), 3),
        "cpu_share": round(float(cpu_s / wall), 3),
        "requests": int(reqs),
        "events": int(evs),
        "requests_per_cpu_s": round(float(reqs / cpu_s), 1),
        "events_per_cpu_s": round(float(evs / cpu_s), 1),
        "requests_per_s": round(float(reqs / wall), 1),
        "events_per_s": round(float(evs / wall), 1),
        **usage.shares(),
    }
    lag = np.asarray(data["loop_lag"], dtype=np.float64).reshape(-1, 2)
    lag = lag[in_window(lag[:, 0]), 1]
    if lag.size:
        res["loop_lag_ms"] = _pcts(lag, (50, 99)) | {"max": round(float(lag.max()), 3)}
    pauses = np.asarray(data.get("gc", []), dtype=np.float64).reshape(-1, 4)
    pauses = pauses[in_window(pauses[:, 0])]
    res["gc"] = {
        "collections": int(pauses.shape[0]),
        "by_generation": [int((pauses[:, 1] == g).sum()) for g in range(3)],
        "cpu_ms_by_generation": [
            round(float(pauses[pauses[:, 1] == g, 3].sum()), 3) for g in range(3)
        ],
        "max_pause_ms": round(float(pauses[:, 2].max()), 3) if pauses.size else 0.0,
        "total_ms": round(float(pauses[:, 2].sum()), 3),
        "total_cpu_ms": round(float(pauses[:, 3].sum()), 3),
    }
    if data["ttft_err"]:
        errs = np.asarray(data["ttft_err"])
        errs = errs[in_window(np.asarray(data["t_err"]))]
        if errs.size:
            res["ttft_err_ms"] = _pcts(errs, (50, 90, 99)) | {
                "max": round(float(errs.max()), 3),
                "n": int(errs.size),
            }
    return res


def measure_floor(url: str, requests: int, cpu: int | None) -> dict[str, Any] | None:
    """The TTFT error with one stream at a time: a raw socket and the LLM client (see
    bench/loadgen_floor.py), in a process on the load generator's core."""
    if requests <= 0:
        return None
    pin = None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))
    cmd = [sys.executable, "-m", "bench.loadgen_floor", url, "--requests", str(requests)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=pin,
                          cwd=HERE.parent)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"floor measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def _point(users: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One sweep point: totals over its rounds per mode, the loadkit / ceiling ratios."""

    def total(mode: str, key: str) -> float:
        return float(sum(r[key] for r in rounds if r["mode"] == mode))

    point: dict[str, Any] = {"users": users}
    for m in ("ceiling", "loadkit"):
        mine = [r for r in rounds if r["mode"] == m]
        point[m] = {
            "requests_per_cpu_s": round(total(m, "requests") / total(m, "cpu_s"), 1),
            "events_per_cpu_s": round(total(m, "events") / total(m, "cpu_s"), 1),
            "requests_per_s": round(total(m, "requests") / total(m, "window_s"), 1),
            "events_per_s": round(total(m, "events") / total(m, "window_s"), 1),
            "cpu_share": round(total(m, "cpu_s") / total(m, "window_s"), 3),
            "loop_lag_p99_ms": max(r["loop_lag_ms"]["p99"] for r in mine if "loop_lag_ms" in r),
            "gc_max_pause_ms": max(r["gc"]["max_pause_ms"] for r in mine),
            "mock_cpu_share": max((r.get("mock_cpu_share", 0.0) for r in mine), default=0.0),
            "other_cpu_share": max((r.get("other_cpu_share", 0.0) for r in mine), default=0.0),
            "streams_running_mid_run": min(
                (r["streams_running_mid_run"] or 0.0 for r in mine), default=0.0
            ),
        }
    c, lk = point["ceiling"], point["loadkit"]
    point["ratio_events_per_cpu_s"] = round(lk["events_per_cpu_s"] / c["events_per_cpu_s"], 3)
    point["ratio_requests_per_cpu_s"] = round(lk["requests_per_cpu_s"] / c["requests_per_cpu_s"], 3)
    errs = [r["ttft_err_ms"] for r in rounds if r["mode"] == "loadkit" and "ttft_err_ms" in r]
    if errs:
        point["ttft_err_ms"] = {
            "p50": max(e["p50"] for e in errs),
            "p99": max(e["p99"] for e in errs),  # the worst round
            "n": sum(e["n"] for e in errs),
        }
    return point


def _table(points: list[dict[str, Any]]) -> str:
    head = (
        f"{'users':>6} {'mode':8}{'req/s':>8}{'ev/s':>8}{'ev/CPU-s':>10}{'CPU':>6}"
        f"{'ratio':>7}{'TTFT err p50/p99 ms':>21}{'lag p99':>9}{'gc max':>8}"
        f"{'streams':>9}{'mock CPU':>9}{'other':>7}"
    )
    lines = [head]
    for p in points:
        for m in ("ceiling", "loadkit"):
            v = p[m]
            ratio = f"{p['ratio_events_per_cpu_s']:.2f}" if m == "loadkit" else ""
            e = p.get("ttft_err_ms") if m == "loadkit" else None
            err = f"{e['p50']:.2f} / {e['p99']:.2f}" if e else ""
            lines.append(
                f"{p['users']:>6} {m:8}{v['requests_per_s']:>8.1f}{v['events_per_s']:>8.0f}"
                f"{v['events_per_cpu_s']:>10.0f}{v['cpu_share']:>6.0%}{ratio:>7}{err:>21}"
                f"{v['loop_lag_p99_ms']:>9.2f}{v['gc_max_pause_ms']:>8.1f}"
                f"{v['streams_running_mid_run']:>9.0f}{v['mock_cpu_share']:>9.0%}"
                f"{v['other_cpu_share']:>7.0%}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", default="10,100,250,500,1000", help="comma-separated sweep")
    ap.add_argument("--seconds", type=float, default=20.0, help="per round")
    ap.add_argument("--rounds", type=int, default=2, help="ceiling/loadkit pairs per point")
    ap.add_argument("--step-ms", type=float, default=100.0, help="the mock's decode step")
    ap.add_argument("--tokens", type=int, default=32, help="output tokens per request")
    ap.add_argument("--floor-requests", type=int, default=200, help="0: no floor measurement")
    ap.add_argument("--out", default=str(HERE / "out" / "loadgen.json"))
    ap.add_argument("--keep", metavar="DIR", help="keep each round's raw samples and records here")
    args = ap.parse_args(argv)
    levels = sorted({int(u) for u in str(args.users).split(",") if u.strip()})
    nofile = raise_nofile()
    mock_cpu, gen_cpu = pick_cpus(None, None)
    print(f"mock on CPU {mock_cpu}, load generator on CPU {gen_cpu}, RLIMIT_NOFILE {nofile}")

    rounds: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        if args.keep:
            work = Path(args.keep)
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-loadgen-")))
        (work / "mock.yaml").write_text(
            yaml.safe_dump(mock_config(args.step_ms, args.tokens, prefill_ms=PREFILL_MS))
        )
        (work / "scenario.yaml").write_text(yaml.safe_dump(bench_scenario(args.tokens)))
        with running_server(
            "mock", ["mocks", "--port", "0", "--config", str(work / "mock.yaml")]
        ) as mock:
            if mock_cpu is not None:
                os.sched_setaffinity(mock.process.pid, {mock_cpu})
            floor = measure_floor(mock.url, args.floor_requests, gen_cpu)
            if floor:
                print(
                    "TTFT error floor, one stream at a time: raw socket p50/p99 "
                    f"{floor['raw_socket']['p50']:.2f} / {floor['raw_socket']['p99']:.2f} ms, "
                    f"LLM client {floor['llm_client']['p50']:.2f} / "
                    f"{floor['llm_client']['p99']:.2f} ms",
                    flush=True,
                )
            for users in levels:
                mine: list[dict[str, Any]] = []
                for k in range(args.rounds):
                    for mode in ("ceiling", "loadkit"):
                        r = run_round(
                            mode, mock.url, users, args.seconds, args.tokens, work, k,
                            mock.process.pid, gen_cpu,
                        )  # fmt: skip
                        mine.append(r)
                        e = r.get("ttft_err_ms")
                        print(
                            f"users {users:>5} round {k} {mode:8s}"
                            f"{r['events_per_cpu_s']:>10.0f} events/CPU-s"
                            f"{r['requests_per_s']:>8.1f} req/s"
                            f"  streams {r['streams_running_mid_run']}"
                            + (f"  TTFT err p99 {e['p99']:.2f} ms" if e else ""),
                            flush=True,
                        )
                        time.sleep(1.0)  # the mock drops the killed users' streams
                rounds += mine
                points.append(_point(users, mine))

    top = points[-1]
    held = max(p["loadkit"]["streams_running_mid_run"] for p in points)
    holds = [p["users"] for p in points if p.get("ttft_err_ms", {}).get("p99", 1e9) < 2.0]
    result = {
        "benchmark": "loadgen",
        "settings": {**vars(args), "users": levels, "mock_cpu": mock_cpu, "gen_cpu": gen_cpu},
        "mock_config": mock_config(args.step_ms, args.tokens, prefill_ms=PREFILL_MS),
        "floor": floor,
        "rounds": rounds,
        "points": points,
        "ratio_events_per_cpu_s": top["ratio_events_per_cpu_s"],
        "ttft_err_p99_under_2ms_at_users": holds,
        "pass": {
            "ratio": all(p["ratio_events_per_cpu_s"] >= TARGET_RATIO for p in points),
            "ttft_err": len(holds) == len(points),
            "concurrency": held >= TARGET_STREAMS,
        },
    }
    print()
    print(_table(points))
    print(
        "loadkit / ceiling (events per CPU-second): "
        + ", ".join(f"{p['ratio_events_per_cpu_s']:.2f} at {p['users']}" for p in points)
        + f" (target >= {TARGET_RATIO})"
    )
    print(
        f"TTFT error p99 under {TARGET_TTFT_ERR_P99_MS} ms at users: {holds or 'none'}; "
        f"most concurrent streams held: {held:.0f} (target >= {TARGET_STREAMS})"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
