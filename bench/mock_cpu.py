"""Benchmark: the mock's CPU time per streamed request, a baseline revision against this tree.

Wall-clock throughput on a shared machine is noise; CPU-seconds the mock process spends per
request are not (much). Both versions of `mocks/` run in turn (alternating, several rounds),
each pinned to one core; this client, pinned to the other, sends a fixed number of short
streaming chat requests over keep-alive connections and reads the server's user+system CPU
from /proc before and after. The claim is the ratio current / baseline, measured in one run.

    python -m bench.mock_cpu --baseline HEAD~3        # the tree's mocks/ against that revision
    python -m bench.mock_cpu --baseline REV --requests 4000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = """\
profile: hosted-api
max_num_seqs: 4096
max_waiting: 8192
prefill_overhead_ms: 1.0
prefill_ms_per_token: 0.0
decode_step_ms: 2.0
decode_step_ms_per_seq: 0.0
output_tokens: {dist: fixed, value: 64}
rate_limits: null
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(tree: Path, config: Path, cpu: int | None) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "mocks", "--port", "0", "--config", str(config)]
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise RuntimeError(f"mock in {tree} did not start")
    if cpu is not None:
        os.sched_setaffinity(proc.pid, {cpu})
    return proc, url


def _request(i: int, tokens: int) -> bytes:
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": f"question number {i}: " + "lorem ipsum " * 20},
            ],
            "max_tokens": tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nAuthorization: Bearer sk-bench\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _drive(url: str, n: int, conns: int, tokens: int) -> int:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    counter = iter(range(n))
    done = 0

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            for i in counter:
                writer.write(_request(i, tokens))
                await reader.readuntil(b"\r\n0\r\n\r\n")
                done += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return done


def measure(tree: Path, config: Path, args: argparse.Namespace) -> float:
    proc, url = _start(tree, config, args.server_cpu)
    try:
        asyncio.run(_drive(url, args.warmup, args.connections, args.tokens))
        c0 = _cpu_seconds(proc.pid)
        done = asyncio.run(_drive(url, args.requests, args.connections, args.tokens))
        c1 = _cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    return (c1 - c0) / done


def _export(rev: str, dest: Path) -> None:
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "mocks"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", required=True, help="git revision whose mocks/ is the baseline")
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--tokens", type=int, default=8, help="max_tokens of each stream")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "mock_cpu.json")
    args = p.parse_args(argv)
    if args.client_cpu is not None:
        os.sched_setaffinity(0, {args.client_cpu})
    results: dict[str, list[float]] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        _export(args.baseline, base)
        (base / "loadkit").symlink_to(REPO / "loadkit")
        config = base / "bench-mock.yaml"
        config.write_text(CONFIG)
        for r in range(args.rounds):
            order = [("baseline", base), ("current", REPO)]
            for name, tree in order if r % 2 == 0 else order[::-1]:
                us = measure(tree, config, args) * 1e6
                results[name].append(us)
                print(f"round {r + 1} {name:8s} {us:8.1f} us CPU per request", flush=True)
    med = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    ratio = med["current"] / med["baseline"]
    print(
        f"median CPU per request: baseline {med['baseline']:.1f} us, "
        f"current {med['current']:.1f} us, ratio {ratio:.3f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "baseline_rev": args.baseline,
                "requests": args.requests,
                "tokens": args.tokens,
                "connections": args.connections,
                "us_per_request": results,
                "median_us": med,
                "ratio": ratio,
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
