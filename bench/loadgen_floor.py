"""The TTFT error floor of bench_loadgen: one stream at a time, a raw socket vs the LLM client.

Both send the same one-token streaming request, one at a time over a kept-alive
connection, and subtract the mock's `x-mock-ttft-ms` from their own time to first token.
The raw client (a pre-built request on a blocking socket with TCP_NODELAY, the time taken
right after the `recv` that brought the first token) leaves only the loopback and the
mock's own lateness in waking at the end of prefill and writing; what the LLM client
measures on top of it is its own share (building the request, gevent's hub, parsing).
Prints one JSON object.

    python -m bench.loadgen_floor URL [--requests 200]
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # as in a Locust process; before anything imports socket

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import numpy as np  # noqa: E402

from loadkit.scenario.model import ClientPolicy  # noqa: E402
from loadkit.traffic.client import LLMClient, PlannedCall, request_body  # noqa: E402

CALL = PlannedCall(
    kind="chat",
    region="local",
    workload="floor",
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "word " * 40}],
    max_tokens=1,
)


def _truth(head: bytes) -> float:
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-mock-ttft-ms":
            return float(value)
    raise SystemExit("the target sent no x-mock-ttft-ms header")


def raw_errors(url: str, n: int) -> list[float]:
    parts = urlsplit(url)
    body = json.dumps(request_body(CALL)).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Accept-Encoding: identity\r\nContent-Length: %d\r\n\r\n"
    )
    req = head % (parts.netloc.encode(), len(body)) + body
    errs: list[float] = []
    with socket.create_connection((parts.hostname, parts.port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            t0 = time.perf_counter()
            s.sendall(req)
            buf = b""
            t_first = None
            while not buf.endswith(b"\r\n0\r\n\r\n"):
                data = s.recv(65536)
                if not data:
                    raise SystemExit("the target closed the connection")
                buf += data
                # the role chunk carries "content":"" and the first token's chunk the second
                if t_first is None and buf.count(b'"content":"') >= 2:
                    t_first = time.perf_counter()
            if t_first is None:
                raise SystemExit(f"no token in {buf[:300]!r}")
            errs.append((t_first - t0) * 1000.0 - _truth(buf.split(b"\r\n\r\n", 1)[0]))
    return errs


def client_errors(url: str, n: int) -> list[float]:
    client = LLMClient(None, {"local": url}, ClientPolicy(), pool_size=1)
    errs: list[float] = []
    try:
        for _ in range(n):
            res = client.execute(CALL)
            if res.record.outcome != "ok":
                raise SystemExit(f"LLM client: {res.record.outcome} {res.record.error}")
            errs.append(res.record.ttft_ms - float(res.headers[-1]["x-mock-ttft-ms"]))
    finally:
        client.close()
    return errs


def _stats(errs: list[float]) -> dict[str, float]:
    a = np.asarray(errs)
    return {f"p{q}": round(float(np.percentile(a, q)), 3) for q in (50, 90, 99)} | {
        "n": int(a.size)
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url")
    ap.add_argument("--requests", type=int, default=200)
    a = ap.parse_args()
    raw_errors(a.url, 5)  # warm-up: connections, caches
    client_errors(a.url, 5)
    raw, llm = [], []
    for _ in range(4):  # interleaved, so both see the same machine
        raw += raw_errors(a.url, a.requests // 4)
        llm += client_errors(a.url, a.requests // 4)
    print(json.dumps({"raw_socket": _stats(raw), "llm_client": _stats(llm)}))


if __name__ == "__main__":
    main()
