"""Benchmark: the mock's stream pacing while large embeddings requests run beside it.

The issue: one embeddings request with 20,000 inputs froze every other stream for 11.3 s.
The mock now caps inputs at 2,048 and builds large bodies in slices (`mocks/embeddings.py`),
so the claim to check is that any valid large request leaves the event loop responsive:
other streams' pacing p99 stays under 5 ms while one runs.

One mock (pinned to one core, fixed decode step, no jitter, `bench_mock.mock_config`) serves
N closed-loop streaming chats read by `bench.sse_load_client` (kernel receive timestamps).
Phase A measures them alone; phase B the same streams while a client thread sends
back-to-back embeddings requests (2,048 inputs, 1,536 dims, ~67 MB answers, read and
discarded). A and B alternate over `--rounds` (order flipped each round) so both see the
same machine. The claim is p99(B) / p99(A) in one run, and p99(B) against the 5 ms target.

    python -m bench.bench_mock_embeddings            # 30 streams, 2 rounds (~1 min)
    python -m bench.bench_mock_embeddings --quick    # smoke size (a few seconds)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.bench_mock import (
    cpu_seconds,
    machine_busy_s,
    mock_config,
    pick_cpus,
    pinned,
    raise_nofile,
    request_body,
    wait_quiet,
)
from bench.sse_load_client import PointSpec, run_point
from bench.template import capture_template
from loadkit.serving.launch import ServerProcess, start_server

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "out" / "bench_mock_embeddings.json"
PATH = "/v1/chat/completions"
EMB_MODEL = "text-embedding-3-small"
TARGET_P99_MS = 5.0


class EmbeddingsLoad:
    """Back-to-back embeddings requests on one keep-alive connection, in a thread.

    The body is read in 1 MB pieces and dropped: the client should cost the mock nothing
    but the answer itself. `stop()` lets the request in flight finish (no cut connection
    left for the mock to clean up during the next phase)."""

    def __init__(self, host: str, port: int, inputs: int) -> None:
        self.host, self.port = host, port
        items = [f"document {i}: the quick brown fox jumps over the dog" for i in range(inputs)]
        self.body = json.dumps({"model": EMB_MODEL, "input": items}).encode()
        self.seconds: list[float] = []
        self.bytes: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        try:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                conn.request("POST", "/v1/embeddings", body=self.body, headers=headers)
                resp = conn.getresponse()
                n, last = 0, b""
                while piece := resp.read(1 << 20):
                    n, last = n + len(piece), piece
                if resp.status != 200 or not last.endswith(b"}"):
                    self.errors.append(f"HTTP {resp.status} ({n} bytes)")
                    return
                self.seconds.append(time.perf_counter() - t0)
                self.bytes.append(n)
        except (OSError, http.client.HTTPException) as exc:
            self.errors.append(repr(exc))
        finally:
            conn.close()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(300)


def _pct(a: np.ndarray, q: float) -> float:
    return round(float(np.percentile(a, q)), 3) if a.size else float("nan")


def run_phase(
    args: argparse.Namespace, mock: ServerProcess, steps: tuple[int, ...], phase: str, rnd: int
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """One window of the streams, with (B) or without (A) embeddings load beside them."""
    host, port = mock.url.removeprefix("http://").rsplit(":", 1)
    lifetime_s = steps[-1] * args.step_ms / 1000.0
    spec = PointSpec(
        host=host,
        port=int(port),
        path=PATH,
        body=request_body("gpt-4o-mini", args.tokens),
        streams=args.streams,
        step_ms=args.step_ms,
        steps=steps,
        ramp_s=min(max(lifetime_s, 0.2), 4.0),
        warmup_s=args.warmup,
        window_s=args.window,
    )
    marks: list[float] = []
    pid = mock.process.pid
    load = EmbeddingsLoad(host, int(port), args.inputs) if phase == "B" else None
    wait_quiet(pid)
    if load:
        load.start()
    r = run_point(spec, lambda _: marks.extend((cpu_seconds(pid), machine_busy_s())))
    t_stop = time.perf_counter()
    if load:
        load.stop()
    mock_cpu = other = 0.0
    if len(marks) == 4:
        mock_cpu = (marks[2] - marks[0]) / r.window_s
        busy = (marks[3] - marks[1] - r.client_cpu_s) / r.window_s
        other = max(0.0, busy - mock_cpu)
    secs = load.seconds if load else []
    row = {
        "phase": phase,
        "round": rnd,
        "streams": args.streams,
        "events": r.events,
        "gap_p50_ms": _pct(r.gap_error_ms, 50),
        "gap_p99_ms": _pct(r.gap_error_ms, 99),
        "gap_max_ms": round(float(r.gap_error_ms.max()), 3) if r.gap_error_ms.size else 0.0,
        "sched_p99_ms": _pct(r.lateness_ms, 99),
        "open_streams_min": int(r.open_streams.min()) if r.open_streams.size else 0,
        "emb_done": len(secs),
        "emb_mean_s": round(float(np.mean(secs)), 3) if secs else None,
        "emb_mean_mb": round(float(np.mean(load.bytes)) / 1e6, 1) if load and secs else None,
        "emb_tail_s": round(time.perf_counter() - t_stop, 2) if load else 0.0,
        "emb_errors": load.errors if load else [],
        "mock_cpu": round(mock_cpu, 3),
        "other_cpu": round(other, 3),
        "coalesced_reads": r.coalesced_reads,
        "errors": dict(r.errors),
    }
    return row, r.gap_error_ms, r.lateness_ms


COLS = (
    ("phase", 5), ("round", 5), ("streams", 7), ("events", 7), ("gap_p50_ms", 10),
    ("gap_p99_ms", 10), ("gap_max_ms", 10), ("sched_p99_ms", 12), ("emb_done", 8),
    ("emb_mean_s", 10), ("mock_cpu", 8), ("other_cpu", 9),
)  # fmt: skip


def _row_text(row: dict[str, Any]) -> str:
    cells = ("-" if row[k] is None else str(row[k]) for k, _ in COLS)
    return " ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, COLS, strict=True))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench_mock_embeddings", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke size: 4 streams, 1 s, 256 inputs")
    ap.add_argument("--streams", type=int, default=30)
    ap.add_argument("--tokens", type=int, default=200, help="completion tokens per stream")
    ap.add_argument("--step-ms", type=float, default=20.0, help="the mock's decode step")
    ap.add_argument("--inputs", type=int, default=2048, help="inputs per embeddings request")
    ap.add_argument("--rounds", type=int, default=2, help="A/B pairs, order flipped each round")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds after the start ramp")
    ap.add_argument("--window", type=float, default=8.0, help="measurement seconds per phase")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.quick:
        args.streams, args.tokens, args.inputs, args.rounds = 4, 20, 256, 1
        args.warmup, args.window = 0.2, 1.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_nofile()
    server_cpu, client_cpu = pick_cpus(None, None)
    rows: list[dict[str, Any]] = []
    pooled: dict[str, list[list[np.ndarray]]] = {"A": [[], []], "B": [[], []]}
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "mock.json"
        conf.write_text(json.dumps(mock_config(args.step_ms, args.tokens)))
        with pinned(server_cpu):
            mock = start_server("mock", ["mocks", "--port", "0", "--config", str(conf)], env=env)
        try:
            body = request_body("gpt-4o-mini", args.tokens)
            steps = capture_template(mock.url + PATH, body, args.step_ms).steps
            print(" ".join(f"{k:>{w}}" for k, w in COLS), flush=True)
            with pinned(client_cpu):
                for rnd in range(args.rounds):
                    for phase in ("A", "B") if rnd % 2 == 0 else ("B", "A"):
                        row, gaps, late = run_phase(args, mock, steps, phase, rnd)
                        rows.append(row)
                        pooled[phase][0].append(gaps)
                        pooled[phase][1].append(late)
                        print(_row_text(row), flush=True)
        finally:
            mock.stop()
    summary: dict[str, Any] = {}
    for ph, (gaps, late) in pooled.items():
        g, s = np.concatenate(gaps), np.concatenate(late)
        summary[ph] = {"gap_p99_ms": _pct(g, 99), "sched_p99_ms": _pct(s, 99), "events": g.size}
    for key in ("gap_p99_ms", "sched_p99_ms"):
        a, b = summary["A"][key], summary["B"][key]
        summary[f"ratio_{key}"] = round(b / a, 2) if a > 0 else None
        summary[f"B_{key}_under_target"] = bool(b < TARGET_P99_MS)
    healthy = all(not r["errors"] and not r["emb_errors"] for r in rows)
    healthy = healthy and all(r["emb_done"] > 0 for r in rows if r["phase"] == "B")
    summary["healthy"] = healthy
    for key, what in (("gap_p99_ms", "gap lateness"), ("sched_p99_ms", "schedule lateness")):
        a, b = summary["A"][key], summary["B"][key]
        verdict = "met" if summary[f"B_{key}_under_target"] else "NOT met"
        print(
            f"{what} p99 (all rounds): A {a:.2f} ms, B {b:.2f} ms, B/A = "
            f"{summary[f'ratio_{key}']}; B under {TARGET_P99_MS:g} ms: {verdict}"
        )
    if not healthy:
        print("UNHEALTHY: stream errors, embeddings errors or no embeddings completed in B")
    doc = {
        "meta": {
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "server_cpu": server_cpu,
            "client_cpu": client_cpu,
            "steps_per_stream": steps[-1],
            "target_p99_ms": TARGET_P99_MS,
        },
        "rows": rows,
        "summary": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {args.out}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
