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
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from loadkit.results.reader import read_records
from loadkit.servers import running_server

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 1.8
RAMP_S = 3.0


def mock_config(users: int, tokens: int) -> dict[str, Any]:
    return {
        "prefill_overhead_ms": 2.0,
        "prefill_ms_per_token": 0.0,
        "decode_step_ms": 1.0,
        "decode_step_ms_per_seq": 0.0,
        "max_num_seqs": max(4096, 2 * users),
        "max_waiting": 8192,
        "output_tokens": {"dist": "fixed", "value": tokens},
        "jitter": {"sigma": 0.0, "step_sigma": 0.0, "tail_prob": 0.0},
        "rate_limits": None,
        "prefix_cache": {"enabled": False},
    }


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


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _loadkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "loadkit.cli", *args]


def run_mode(mode: str, scenario: Path, out: Path, mock_pid: int, hold_s: float) -> dict[str, Any]:
    cpu0, mock0, t0 = _children_cpu_s(), _proc_cpu_s(mock_pid), time.perf_counter()
    args = ["run", str(scenario), "--out", str(out)]
    workers: list[subprocess.Popen[bytes]] = []
    if mode == "processes2":
        args += ["--processes", "2"]
    if mode == "workers2":
        port = _free_port()
        args += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
        args += ["--expect-workers", "2"]
    log = open(out.with_suffix(".log"), "w")  # noqa: SIM115 - closed below
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
    cpu_s = _children_cpu_s() - cpu0
    mock_cpu_s = _proc_cpu_s(mock_pid) - mock0
    rec = read_records(out / "requests.csv")
    end_ms = rec["t_sent"] + rec["e2e_ms"]
    ok = rec["outcome"] == "ok"
    lo, hi = (RAMP_S + 1.0) * 1000.0, (RAMP_S + hold_s - 1.0) * 1000.0
    done = int(np.sum(ok & (end_ms >= lo) & (end_ms < hi)))
    window_s = (hi - lo) / 1000.0
    return {
        "mode": mode,
        "exit_code": rc,
        "requests": int(rec["request_id"].size),
        "errors": int(np.sum(~ok)),
        "window_s": window_s,
        "requests_per_s": round(done / window_s, 1),
        "workers": sorted(set(rec["worker"].tolist())),
        # The whole run, report included; Locust's forked --processes workers outlive its
        # master and are not counted by the kernel's child accounting, so not for processes2.
        "loadgen_cpu_s": None if mode == "processes2" else round(cpu_s, 2),
        "mock_cpu_share": round(mock_cpu_s / wall_s, 2),
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
        cfg.write_text(yaml.safe_dump(mock_config(a.users, a.tokens)))
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
        f"{'lg cpu-s':>8} {'mock cpu':>8} {'workers':<10}"
    )
    for r, rows in enumerate(rounds):
        for row in rows:
            print(
                f"{r:>5} {row['mode']:<11} {row['requests_per_s']:>8.1f} "
                f"{row['ratio_vs_one']:>6.2f} {row['errors']:>6} {_cpu(row['loadgen_cpu_s']):>8} "
                f"{row['mock_cpu_share']:>8.2f} {','.join(row['workers']):<10}"
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
