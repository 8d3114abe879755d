"""One Locust load-generator process against the mock: loadkit's users vs the plain ceiling.

In one run, against one mock (its profile made flat: fixed output length, fixed decode step,
no jitter, no rate limit, room for every stream), the same number of Locust users stream
chat completions back to back, in alternating rounds:

- ceiling: a plain Locust `FastHttpUser` that posts the request and only reads the body;
- loadkit: the closed-loop user class `loadkit run` uses (SSE timed at each line, chunk
  parsing, one record per attempt to requests.csv, live TTFT/ITL rows in Locust's stats).

Figures per round, over the steady window (after all users are running): streamed requests
and SSE events consumed per CPU-second of the load-generator process (work per core), the
same per wall second, and for loadkit the TTFT error (measured TTFT minus the mock's
`x-mock-ttft-ms` ground truth; it includes the loopback and the mock's own write path).
The claim is the ratio loadkit / ceiling of events per CPU-second, measured side by side.

    python -m bench.bench_loadgen [--users 1000] [--seconds 20] [--rounds 2] [--step-ms 100]
                                  [--tokens 32] [--out bench/out/loadgen.json]
"""

from __future__ import annotations

import argparse
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

from loadkit.servers import running_server

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "loadgen_locustfile.py"
TARGET_RATIO = 0.70
TARGET_TTFT_ERR_P99_MS = 2.0


def mock_config(step_ms: float, tokens: int, users: int) -> dict[str, Any]:
    return {
        "prefill_overhead_ms": 20.0,
        "prefill_ms_per_token": 0.0,
        "decode_step_ms": step_ms,
        "decode_step_ms_per_seq": 0.0,
        "max_num_seqs": max(4096, 2 * users),
        "max_waiting": 8192,
        "output_tokens": {"dist": "fixed", "value": tokens},
        "jitter": {"sigma": 0.0, "step_sigma": 0.0, "tail_prob": 0.0},
        "rate_limits": None,
        "prefix_cache": {"enabled": False},
    }


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


def run_round(
    mode: str, url: str, users: int, seconds: float, tokens: int, work: Path, k: int
) -> dict[str, Any]:
    out = work / f"{mode}-{k}.json"
    env = {
        **os.environ,
        "BENCH_MODE": mode,
        "BENCH_URL": url,
        "BENCH_OUT": str(out),
        "BENCH_TOKENS": str(tokens),
        "BENCH_SCENARIO": str(work / "scenario.yaml"),
        "BENCH_RECORDS": str(work / f"requests-{k}.csv"),
    }
    spawn_rate = max(users / 4.0, 1.0)  # all users within 4 s
    cmd = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary",
        "-u", str(users), "-r", f"{spawn_rate:g}", "-t", f"{seconds:g}s",
        "--stop-timeout", "0", "--exit-code-on-error", "0", "--loglevel", "WARNING",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    time.sleep(min(seconds * 0.6, 4.0 + (seconds - 4.0) / 2))
    running = _running_streams(url)
    _, err = proc.communicate(timeout=seconds + 120)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"{mode} round failed (exit {proc.returncode}):\n{err[-3000:]}")
    data = json.loads(out.read_text())
    samples = np.asarray(data["samples"], dtype=np.float64)
    # Steady window: from 5 s (users spawned within 4 s) to the last sample.
    t = samples[:, 0] - samples[0, 0]
    lo = int(np.searchsorted(t, 5.0))
    hi = len(samples) - 1
    if hi - lo < 3:
        raise SystemExit(f"{mode}: run too short for a steady window ({len(samples)} samples)")
    d = samples[hi] - samples[lo]
    wall, cpu, reqs, evs = d
    res: dict[str, Any] = {
        "mode": mode,
        "users": users,
        "streams_running_mid_run": running,
        "window_s": round(float(wall), 3),
        "cpu_s": round(float(cpu), 3),
        "cpu_share": round(float(cpu / wall), 3),
        "requests": int(reqs),
        "events": int(evs),
        "requests_per_cpu_s": round(float(reqs / cpu), 1),
        "events_per_cpu_s": round(float(evs / cpu), 1),
        "requests_per_s": round(float(reqs / wall), 1),
        "events_per_s": round(float(evs / wall), 1),
    }
    lag = np.asarray(data["loop_lag"], dtype=np.float64)
    if lag.size:
        when = lag[:, 0] - samples[0, 0]
        lag = lag[(when >= t[lo]) & (when <= t[hi]), 1]
        res["loop_lag_ms"] = {f"p{q}": round(float(np.percentile(lag, q)), 3) for q in (50, 99)}
    if data["ttft_err"]:
        errs = np.asarray(data["ttft_err"])
        when = np.asarray(data["t_err"]) - samples[0, 0]
        errs = errs[(when >= t[lo]) & (when <= t[hi])]
        res["ttft_err_ms"] = {
            f"p{q}": round(float(np.percentile(errs, q)), 3) for q in (50, 90, 99)
        } | {"n": int(errs.size)}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--step-ms", type=float, default=100.0)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--out", default=str(HERE / "out" / "loadgen.json"))
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-loadgen-") as tmp:
        work = Path(tmp)
        (work / "mock.yaml").write_text(
            yaml.safe_dump(mock_config(args.step_ms, args.tokens, args.users))
        )
        (work / "scenario.yaml").write_text(yaml.safe_dump(bench_scenario(args.tokens)))
        rounds: list[dict[str, Any]] = []
        with running_server(
            "mock", ["mocks", "--port", "0", "--config", str(work / "mock.yaml")]
        ) as mock:
            for k in range(args.rounds):
                for mode in ("ceiling", "loadkit"):
                    r = run_round(mode, mock.url, args.users, args.seconds, args.tokens, work, k)
                    rounds.append(r)
                    streams = r["streams_running_mid_run"]
                    print(
                        f"round {k} {mode:8s} {r['events_per_cpu_s']:>10.0f} events/CPU-s "
                        f"{r['requests_per_s']:>8.1f} req/s  streams {streams}",
                        flush=True,
                    )

    def total(mode: str, key: str) -> float:
        return float(sum(r[key] for r in rounds if r["mode"] == mode))

    per_cpu = {
        m: {
            "requests_per_cpu_s": total(m, "requests") / total(m, "cpu_s"),
            "events_per_cpu_s": total(m, "events") / total(m, "cpu_s"),
            "requests_per_s": total(m, "requests") / total(m, "window_s"),
            "events_per_s": total(m, "events") / total(m, "window_s"),
            "cpu_share": total(m, "cpu_s") / total(m, "window_s"),
        }
        for m in ("ceiling", "loadkit")
    }
    ratio = per_cpu["loadkit"]["events_per_cpu_s"] / per_cpu["ceiling"]["events_per_cpu_s"]
    errs = [r["ttft_err_ms"]["p99"] for r in rounds if "ttft_err_ms" in r]
    ttft_p99 = max(errs) if errs else None
    streams = [r["streams_running_mid_run"] for r in rounds if r["mode"] == "loadkit"]
    result = {
        "benchmark": "loadgen",
        "settings": vars(args),
        "rounds": rounds,
        "per_mode": per_cpu,
        "ratio_events_per_cpu_s": round(ratio, 3),
        "ttft_err_p99_ms_worst_round": ttft_p99,
        "targets": {
            "ratio_min": TARGET_RATIO,
            "ttft_err_p99_ms_max": TARGET_TTFT_ERR_P99_MS,
            "concurrent_users_min": 1000,
        },
        "pass": {
            "ratio": ratio >= TARGET_RATIO,
            "ttft_err": ttft_p99 is not None and ttft_p99 < TARGET_TTFT_ERR_P99_MS,
            "concurrency": args.users >= 1000
            and all((s or 0) >= 0.9 * args.users for s in streams),
        },
    }
    print()
    print(f"{'':10}{'req/CPU-s':>12}{'events/CPU-s':>14}{'req/s':>10}{'events/s':>11}{'CPU':>7}")
    for m, v in per_cpu.items():
        lags = [r["loop_lag_ms"]["p99"] for r in rounds if r["mode"] == m and "loop_lag_ms" in r]
        print(
            f"{m:10}{v['requests_per_cpu_s']:>12.1f}{v['events_per_cpu_s']:>14.0f}"
            f"{v['requests_per_s']:>10.1f}{v['events_per_s']:>11.0f}{v['cpu_share']:>7.0%}"
            f"  loop lag p99 {max(lags) if lags else float('nan'):.2f} ms"
        )
    print(f"loadkit / ceiling (events per CPU-second): {ratio:.2f} (target >= {TARGET_RATIO})")
    print(f"TTFT error p99 (worst round): {ttft_p99} ms (target < {TARGET_TTFT_ERR_P99_MS} ms)")
    print(f"concurrent streams mid-run (loadkit rounds): {streams} of {args.users} users")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
