"""LLM client cost per request against a plain Locust FastHttpSession that only reads the body.

One load-generator process (gevent-patched, as under Locust) drives the mock with the same
concurrency twice in one run: first the ceiling, `FastHttpSession.post` that reads the
whole streamed body and fires Locust's request event; then `LLMClient.execute`, which
times every SSE event, parses the chunks, writes a record per attempt to requests.csv
and logs the TTFT/ITL rows. The figure of merit is work per CPU second of the client
process (`time.process_time`): streamed requests and SSE events per CPU second, and the
ratio LLM client / ceiling. The TTFT error is measured TTFT minus the mock's
`x-mock-ttft-ms` ground truth (it includes the loopback and the mock's own write path).

    python -m bench.bench_client [--streams 200] [--seconds 15] [--step-ms 25]
                                 [--out bench/out/client.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
import locust  # noqa: F401  (gevent monkey-patching first, as in a Locust process)
import numpy as np
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from loadkit.results.writer import RecordWriter
from loadkit.scenario.model import ClientPolicy
from loadkit.servers import running_server
from loadkit.traffic.client import LLMClient, PlannedCall, request_body

MOCK_CONFIG = {
    "prefill_overhead_ms": 50.0,
    "prefill_ms_per_token": 0.0,
    "decode_step_ms": 25.0,
    "decode_step_ms_per_seq": 0.0,
    "max_num_seqs": 4096,
    "max_waiting": 8192,
    "output_tokens": {"dist": "fixed", "value": 64},
    "jitter": {"sigma": 0.0, "step_sigma": 0.0, "tail_prob": 0.0},
}


def _call(i: int) -> PlannedCall:
    return PlannedCall(
        kind="chat",
        region="local",
        workload="bench",
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "word " * 40}],
        max_tokens=64,
        stream=True,
        session_id=f"s{i}",
    )


def _phase(streams: int, seconds: float, one: Any) -> dict[str, float]:
    """Run `one()` in `streams` greenlets for `seconds`; count requests/events, CPU and wall."""
    counts = {"requests": 0, "events": 0}
    stop = time.perf_counter() + seconds

    def loop(k: int) -> None:
        gevent.sleep(k * 0.5 / streams)  # spread starts over 0.5 s
        while time.perf_counter() < stop:
            n = one(k)  # yields: add after, or concurrent updates are lost
            counts["events"] += n
            counts["requests"] += 1

    cpu0, wall0 = time.process_time(), time.perf_counter()
    gevent.joinall([gevent.spawn(loop, k) for k in range(streams)], raise_error=True)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {
        **counts,
        "cpu_s": cpu,
        "wall_s": wall,
        "requests_per_cpu_s": counts["requests"] / cpu,
        "events_per_cpu_s": counts["events"] / cpu,
        "requests_per_s": counts["requests"] / wall,
    }


def run(streams: int, seconds: float, step_ms: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "mock.yaml"
        cfg.write_text(json.dumps({**MOCK_CONFIG, "decode_step_ms": step_ms}))
        with running_server("mock", ["mocks", "--port", "0", "--config", str(cfg)]) as mock:
            env = Environment()
            env.create_local_runner()
            session = FastHttpSession(
                mock.url, request_event=env.events.request, user=None, concurrency=streams
            )
            body = json.dumps(request_body(_call(0)))

            def plain(k: int) -> int:
                resp = session.post(
                    "/v1/chat/completions",
                    data=body,
                    headers={"Content-Type": "application/json", "Accept-Encoding": "identity"},
                )
                return (resp.content or b"").count(b"\n\n")

            ceiling = _phase(streams, seconds, plain)

            writer = RecordWriter(Path(tmp) / "requests.csv")
            ttft_err: list[float] = []
            client = LLMClient(
                env,
                {"local": mock.url},
                ClientPolicy(),
                sink=writer,
                run_id="bench",
                worker="w0",
                pool_size=streams,
            )

            def llm(k: int) -> int:
                res = client.execute(_call(k))
                rec = res.record
                truth = res.headers[-1].get("x-mock-ttft-ms") if res.headers else None
                if rec.outcome == "ok" and truth:
                    ttft_err.append(rec.ttft_ms - float(truth))
                # SSE events of the stream: role + content chunks + finish + usage + [DONE]
                return rec.completion_tokens + 4

            measured = _phase(streams, seconds, llm)
            writer.close()
            rows = writer.rows_written
    err = np.asarray(ttft_err)
    return {
        "streams": streams,
        "seconds": seconds,
        "decode_step_ms": step_ms,
        "ceiling_plain_fasthttp": ceiling,
        "llm_client": measured,
        "ratio_requests_per_cpu": measured["requests_per_cpu_s"] / ceiling["requests_per_cpu_s"],
        "ttft_error_ms": {
            "p50": float(np.percentile(err, 50)) if err.size else None,
            "p99": float(np.percentile(err, 99)) if err.size else None,
        },
        "records_written": rows,
    }


def main() -> None:
    p = argparse.ArgumentParser(prog="bench_client", description=__doc__)
    p.add_argument("--streams", type=int, default=200)
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--step-ms", type=float, default=25.0, help="the mock's decode step")
    p.add_argument("--out", type=Path, default=Path("bench/out/client.json"))
    a = p.parse_args()
    res = run(a.streams, a.seconds, a.step_ms)
    c, m = res["ceiling_plain_fasthttp"], res["llm_client"]
    print(f"{'':28}{'plain FastHttp':>16}{'LLMClient':>12}")
    for key in ("requests", "events", "cpu_s", "requests_per_s", "requests_per_cpu_s"):
        print(f"{key:28}{c[key]:>16.1f}{m[key]:>12.1f}")
    print(f"{'events_per_cpu_s':28}{c['events_per_cpu_s']:>16.0f}{m['events_per_cpu_s']:>12.0f}")
    print(f"LLMClient / ceiling (requests per CPU second): {res['ratio_requests_per_cpu']:.2f}")
    e = res["ttft_error_ms"]
    print(f"TTFT - x-mock-ttft-ms: p50 {e['p50']:.2f} ms, p99 {e['p99']:.2f} ms")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
