"""Load-generator scale-out: one process against `--processes 2` and a master with two workers.

In one run, against one mock started here (flat and fast: fixed short outputs, a 1 ms decode
step, no jitter, no rate limits, room for every stream), the same closed-loop scenario runs
through the real CLI in three modes, in alternating order per round:

- `one`: `loadkit run S` (one Locust process does everything);
- `processes2`: `loadkit run S --processes 2` (Locust's master and two forked workers);
- `workers2`: `loadkit run S --master --expect-workers 2` and two `loadkit worker`s.

The users send back to back (no think time) against a mock that answers in a few ms, so one
load-generator process is CPU-bound. Figures per round, over the steady window (after the
ramp, before the end): completed requests per second (from requests.csv), the CPU seconds
the load generator used (every process of the run except the mock, from the kernel's child
accounting) and the mock's CPU share. The claim is the ratio of requests/s against `one`
measured in the same round (the best round counts: the machine is shared); the mock shares
the machine's two cores with the load generators, so its share is printed too.

    python -m bench.bench_distributed [--users 300] [--seconds 20] [--rounds 2]
                                      [--out bench/out/bench_distributed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.bench_mock import mock_config
from loadkit.results.reader import read_records
from loadkit.serving.launch import running_server

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 1.8
RAMP_S = 3.0


def bench_scenario(url: str, users: int, seconds: float, tokens: int) -> dict[str, Any]:
    return {
        "name": "bench-distributed",
        "seed": 1,
        "target": {"base_url": url, "model": "gpt-4o-mini"},
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
        "load": {
            "type": "closed",
            "phases": [
                {"kind": "ramp", "users": users, "for": f"{RAMP_S:g}s"},
                {"kind": "hold", "users": users, "for": f"{seconds:g}s"},
            ],
        },
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CpuSampler:
    """Every `interval_s`: CPU seconds used so far by this process's descendants but the mock
    (the load generator: loadkit run, Locust's master and workers, the `loadkit worker`s),
    the mock's, and when requests.csv first had rows (to align the window)."""

    def __init__(self, root: int, mock: int, csv: Path, interval_s: float = 0.25):
        self.root, self.mock, self.csv, self.interval = root, mock, csv, interval_s
        self.last: dict[int, float] = {}  # pid -> its CPU seconds when last seen
        self.samples: list[tuple[float, float, float]] = []  # (t, load generator, mock)
        self.first_rows_at: float | None = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> CpuSampler:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    def _loop(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.is_set():
            parent: dict[int, int] = {}
            cpu: dict[int, float] = {}
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    f = stat.read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                pid = int(stat.parent.name)
                parent[pid] = int(f[1])
                cpu[pid] = (int(f[11]) + int(f[12])) / tick
            for pid in cpu:
                p, hops = pid, 0
                while p > 1 and p not in (self.root, self.mock) and hops < 64:
                    p, hops = parent.get(p, 0), hops + 1
                if p == self.root and pid != self.root:
                    self.last[pid] = cpu[pid]
            now = time.perf_counter()
            if self.first_rows_at is None and self.csv.exists() and self.csv.stat().st_size > 600:
                self.first_rows_at = now
            self.samples.append((now, sum(self.last.values()), cpu.get(self.mock, 0.0)))
            self._stop.wait(self.interval)

    def window(self, lo_s: float, hi_s: float) -> tuple[float, float]:
        """(load generator, mock) CPU seconds from lo_s to hi_s after the first rows."""
        if self.first_rows_at is None or not self.samples:
            return float("nan"), float("nan")
        a, b = self.first_rows_at + lo_s, self.first_rows_at + hi_s
        at_a = min(self.samples, key=lambda x: abs(x[0] - a))
        at_b = min(self.samples, key=lambda x: abs(x[0] - b))
        return at_b[1] - at_a[1], at_b[2] - at_a[2]


def _loadkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "loadkit.cli", *args]


def run_mode(mode: str, scenario: Path, out: Path, mock_pid: int, hold_s: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    args = ["run", str(scenario), "--out", str(out)]
    workers: list[subprocess.Popen[bytes]] = []
    if mode == "processes2":
        args += ["--processes", "2"]
    if mode == "workers2":
        port = _free_port()
        args += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
        args += ["--expect-workers", "2"]
    log = open(out.with_suffix(".log"), "w")  # noqa: SIM115 - closed below
    with CpuSampler(os.getpid(), mock_pid, out / "requests.csv") as cpu:
        master = subprocess.Popen(_loadkit(*args), stdout=log, stderr=subprocess.STDOUT)
        if mode == "workers2":
            for _ in range(2):
                cmd = _loadkit("worker", "--master-host", "127.0.0.1", "--master-port", str(port))
                workers.append(
                    subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )
        rc = master.wait(timeout=hold_s + 180)
        for w in workers:
            w.wait(timeout=60)
    log.close()
    wall_s = time.perf_counter() - t0
    rec = read_records(out / "requests.csv")
    end_ms = rec["t_sent"] + rec["e2e_ms"]
    ok = rec["outcome"] == "ok"
    lo, hi = (RAMP_S + 1.0) * 1000.0, (RAMP_S + hold_s - 1.0) * 1000.0
    done = int(np.sum(ok & (end_ms >= lo) & (end_ms < hi)))
    window_s = (hi - lo) / 1000.0
    first_ms = float(np.min(rec["t_sent"]))
    lg_cpu, mock_cpu = cpu.window((lo - first_ms) / 1000.0, (hi - first_ms) / 1000.0)
    return {
        "mode": mode,
        "exit_code": rc,
        "requests": int(rec["request_id"].size),
        "errors": int(np.sum(~ok)),
        "window_s": window_s,
        "requests_per_s": round(done / window_s, 1),
        "workers": sorted(set(rec["worker"].tolist())),
        # In the window, aligned on requests.csv's first rows (within about 0.5 s):
        "loadgen_cores": round(lg_cpu / window_s, 2),
        "mock_cores": round(mock_cpu / window_s, 2),
        "requests_per_loadgen_cpu_s": round(done / lg_cpu, 1) if lg_cpu > 0 else None,
        "wall_s": round(wall_s, 1),
    }


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=20.0, help="hold time per run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=8, help="output tokens per request")
    ap.add_argument("--out", default=str(HERE / "out" / "bench_distributed.json"))
    a = ap.parse_args(argv)
    modes = ["one", "processes2", "workers2"]
    rounds: list[list[dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        cfg = Path(tmp) / "mock.yaml"
        cfg.write_text(yaml.safe_dump(mock_config(1.0, a.tokens, prefill_ms=2.0)))
        with running_server("mock", ["mocks", "--port", "0", "--config", str(cfg)]) as mock:
            path = Path(tmp) / "scenario.yaml"
            sc = bench_scenario(mock.url, a.users, a.seconds, a.tokens)
            path.write_text(yaml.safe_dump(sc, sort_keys=False))
            for r in range(a.rounds):
                order = modes if r % 2 == 0 else modes[::-1]
                got = {}
                for mode in order:
                    out = Path(tmp) / f"r{r}-{mode}"
                    got[mode] = run_mode(mode, path, out, mock.process.pid, a.seconds)
                    print(f"round {r} {mode}: {got[mode]['requests_per_s']} req/s", flush=True)
                base = got["one"]["requests_per_s"] or float("nan")
                for m in modes:
                    got[m]["ratio_vs_one"] = round(got[m]["requests_per_s"] / base, 2)
                rounds.append([got[m] for m in modes])
    print()
    print(
        f"{'round':>5} {'mode':<11} {'req/s':>8} {'x one':>6} {'errors':>6} "
        f"{'lg cores':>8} {'req/lg cpu-s':>12} {'mock cores':>10} {'workers':<10}"
    )
    for r, rows in enumerate(rounds):
        for row in rows:
            print(
                f"{r:>5} {row['mode']:<11} {row['requests_per_s']:>8.1f} "
                f"{row['ratio_vs_one']:>6.2f} {row['errors']:>6} {row['loadgen_cores']:>8.2f} "
                f"{row['requests_per_loadgen_cpu_s'] or float('nan'):>12.1f} "
                f"{row['mock_cores']:>10.2f} {','.join(row['workers']):<10}"
            )
    best = {m: max(rows[i]["ratio_vs_one"] for rows in rounds) for i, m in enumerate(modes)}
    print(
        f"\nbest ratio vs one process: processes2 {best['processes2']:.2f}, "
        f"workers2 {best['workers2']:.2f} (target {TARGET_RATIO})"
    )
    doc = {
        "benchmark": "distributed",
        "settings": vars(a),
        "cpus": os.cpu_count(),
        "rounds": rounds,
        "best_ratio_vs_one": best,
        "target_ratio": TARGET_RATIO,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
