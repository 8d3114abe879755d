"""Drives `LLMClient` in its own process (gevent-patched, as under Locust) for the tests.

Locust monkey-patches the interpreter with gevent at import; the test process must not be
patched (other tests use threads and asyncio), so tests run `python -m tests.traffic_driver
CASE ARGS_JSON` and read one JSON object from its last stdout line.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import sys
import time
from dataclasses import asdict, replace
from typing import Any

import gevent
import locust  # noqa: F401  (gevent monkey-patching, exactly as in a Locust process)
from gevent.pool import Pool

from loadkit.results.schema import RequestRecord
from loadkit.scenario.model import ClientPolicy, Retries, Timeouts
from loadkit.traffic.client import LLMClient, LogicalResult, PlannedCall


def _msgs(n_words: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": "tell me a story " * n_words}]


def _rec(r: RequestRecord) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(r).items()
    }


def _result(res: LogicalResult) -> dict[str, Any]:
    return {
        "ok": res.ok,
        "latency_ms": res.latency_ms,
        "attempts": res.attempts,
        "text_len": len(res.text),
        "records": [_rec(r) for r in res.records],
        "headers": [dict(h) for h in res.headers],
    }


def _policy(args: dict[str, Any]) -> ClientPolicy:
    t = Timeouts(**args.get("timeouts", {}))
    r = Retries(**args.get("retries", {}))
    return ClientPolicy(timeouts=t, retries=r, failover=tuple(args.get("failover", ())))


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _unaccepting_port(keep: list[socket.socket]) -> int:
    """A loopback listener whose accept queue is full: a new connection's SYN goes unanswered."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    keep.append(srv)
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(("127.0.0.1", port))
        keep.append(s)
    time.sleep(0.1)
    return port


def run_calls(args: dict[str, Any]) -> dict[str, Any]:
    """`n` chat calls with `concurrency` greenlets against args["url"]."""
    sunk: list[RequestRecord] = []
    endpoints = dict(args.get("endpoints") or {"r1": args["url"]})
    keep: list[socket.socket] = []
    for region, url in list(endpoints.items()):
        if url == "dead":
            endpoints[region] = f"http://127.0.0.1:{_closed_port()}"
        elif url == "unaccepting":
            endpoints[region] = f"http://127.0.0.1:{_unaccepting_port(keep)}"
    client = LLMClient(
        None,
        endpoints,
        _policy(args),
        sink=sunk.append,
        run_id="test",
        worker="w0",
        rtt_ms=args.get("rtt_ms"),
        seed=1,
    )
    call = PlannedCall(
        kind=args.get("kind", "chat"),
        region=args.get("region", "r1"),
        workload="chat",
        model=args.get("model", "gpt-4o-mini"),
        messages=_msgs(args.get("prompt_words", 20)),
        prompt="tell me a story " * args.get("prompt_words", 20),
        input="some text to embed",
        max_tokens=args.get("max_tokens", 20),
        stream=args.get("stream", True),
    )
    results: list[LogicalResult] = []

    def one(i: int) -> None:
        results.append(client.execute(replace(call, session_id=f"s{i}")))

    pool = Pool(args.get("concurrency", 1))
    t0 = time.perf_counter()
    for i in range(args.get("n", 1)):
        pool.spawn(one, i)
    pool.join(raise_error=True)
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "results": [_result(r) for r in results],
        "sunk": [_rec(r) for r in sunk],
    }


def run_locust_stats(args: dict[str, Any]) -> dict[str, Any]:
    """Requests through a real Locust Environment/LocalRunner: what do the stats show?"""
    from locust.env import Environment

    env = Environment()
    env.create_local_runner()
    client = LLMClient(env, {"r1": args["url"]}, ClientPolicy(), run_id="t", worker="w0")
    call = PlannedCall(
        kind="chat",
        region="r1",
        workload="chat",
        model="gpt-4o-mini",
        messages=_msgs(5),
        max_tokens=10,
    )
    pool = Pool(5)
    for _ in range(args.get("n", 5)):
        pool.spawn(client.execute, call)
    pool.join(raise_error=True)
    st = env.stats
    rows = {f"{m} {n}": e.num_requests for (n, m), e in st.entries.items()}
    return {
        "total": st.total.num_requests,
        "total_failures": st.total.num_failures,
        "rows": rows,
        "ttft_median": st.get("chat", "TTFT").get_response_time_percentile(0.5),
    }


class _Ctx:
    """The run context `build_user_classes` reads (loadkit.traffic.locustfile.RunContext's API)."""

    def __init__(self, scenario: Any, url: str, max_requests: int) -> None:
        self.scenario = scenario
        self.endpoints = {r.name: url for r in scenario.regions}
        self.headers: dict[str, str] = {}
        self.run_id = "users-test"
        self.seed = scenario.seed
        self.rtt_ms = {r.name: r.rtt_ms for r in scenario.regions}
        self.worker = "w0"
        self.run_t0 = time.perf_counter()
        self.records: list[RequestRecord] = []
        self.admitted = 0
        self.max_requests = max_requests
        # what RunContext.with_routes fills: the target's API for every region, no keys
        self.routes = {n: scenario.route_endpoint(n, u) for n, u in self.endpoints.items()}
        self.keys: dict[str, str | None] = {}
        self.endpoint_headers: dict[str, dict[str, str]] = {}

    def record(self, rec: RequestRecord) -> None:
        self.records.append(rec)

    def admit(self) -> bool:
        self.admitted += 1
        return self.admitted <= self.max_requests

    def price_for(self, region: str, model: str = "") -> Any:
        pricing = self.scenario.pricing
        return None if pricing is None else pricing.price_for(region)


def run_users(args: dict[str, Any]) -> dict[str, Any]:
    """A real Locust LocalRunner with the scenario's user classes for a few seconds."""
    from locust.env import Environment

    from loadkit.scenario import load_scenario
    from loadkit.traffic.users import build_user_classes

    sc = load_scenario(args["scenario"])
    ctx = _Ctx(sc, args["url"], args.get("max_requests", 10_000))
    classes = build_user_classes(sc, ctx)
    env = Environment(user_classes=classes)
    ctx.environment = env
    runner = env.create_local_runner()
    runner.start(args["users"], spawn_rate=100)
    gevent.sleep(args["seconds"])
    runner.stop()
    runner.quit()
    return {
        "classes": {c.__name__: c.weight for c in classes},
        "records": [_rec(r) for r in ctx.records],
        "total": env.stats.total.num_requests,
        "ttft_rows": sum(e.num_requests for (n, m), e in env.stats.entries.items() if m == "TTFT"),
    }


CASES = {"calls": run_calls, "locust_stats": run_locust_stats, "users": run_users}


def main() -> None:
    case, raw = sys.argv[1], sys.argv[2]
    out = CASES[case](json.loads(raw))
    gevent.sleep(0)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
