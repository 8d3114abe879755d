"""The Locust side of bench_loadgen: one user class per mode, run by `locust -f` headless.

BENCH_MODE=ceiling: a plain FastHttpUser that posts the streaming request and only reads
the body (TOKENS content events per answer: the mock's output length is fixed).
BENCH_MODE=loadkit: the closed-loop user class `loadkit run` uses (`build_user_classes`)
with its client, live TTFT/ITL stats and a RecordWriter sink, wrapped only to read the
mock's ground-truth `x-mock-ttft-ms` header for the TTFT error. Sampler greenlets record
(wall, CPU, requests, events) every second and how late a 5 ms timer fires, a gc callback
how long each garbage collection held the process; at exit all of it goes to BENCH_OUT as
JSON.
"""

from __future__ import annotations

import gc
import json
import math
import os
import time
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task

MODE = os.environ["BENCH_MODE"]
URL = os.environ["BENCH_URL"]
OUT = os.environ["BENCH_OUT"]
TOKENS = int(os.environ.get("BENCH_TOKENS", "32"))
STATE: dict[str, Any] = {
    "requests": 0,
    "events": 0,
    "samples": [],
    "ttft_err": [],
    "t_err": [],
    "loop_lag": [],
    "gc": [],  # (when, generation, pause wall ms, pause CPU ms)
}
_LAG_TICK_S = 0.005
BODY = json.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "word " * 40}],
        "max_tokens": TOKENS,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
)
HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    def sample() -> None:
        while True:
            STATE["samples"].append(
                (time.perf_counter(), time.process_time(), STATE["requests"], STATE["events"])
            )
            gevent.sleep(1.0)

    def loop_lag() -> None:
        # How late a 5 ms timer fires: a bound on how long a socket read waits for the
        # process (its TTFT timestamp is taken that much after the bytes arrived).
        while True:
            t = time.perf_counter()
            gevent.sleep(_LAG_TICK_S)
            STATE["loop_lag"].append((t, (time.perf_counter() - t - _LAG_TICK_S) * 1000.0))

    gc_start: list[float] = []

    def gc_pause(phase: str, info: dict[str, Any]) -> None:
        # wall time of the pause, and the CPU time it took (the wall time also holds any
        # moment the OS gave the core to another process)
        if phase == "start":
            gc_start[:] = [time.perf_counter(), time.thread_time()]
        elif gc_start:
            t, cpu = time.perf_counter(), time.thread_time()
            wall_ms, cpu_ms = (t - gc_start[0]) * 1000.0, (cpu - gc_start[1]) * 1000.0
            STATE["gc"].append((t, info["generation"], wall_ms, cpu_ms))

    gc.callbacks.append(gc_pause)
    gevent.spawn(sample)
    gevent.spawn(loop_lag)


@events.quitting.add_listener
def _on_quit(environment: Any, **_: Any) -> None:
    STATE["users"] = environment.runner.user_count if environment.runner else 0
    with open(OUT, "w") as f:
        json.dump(STATE, f)


if MODE == "ceiling":
    import random

    from loadkit.traffic.users import START_SPREAD_S

    class CeilingUser(FastHttpUser):
        host = URL
        wait_time = constant(0)

        def on_start(self) -> None:
            gevent.sleep(random.uniform(0.0, START_SPREAD_S))  # the same ramp as loadkit's users

        @task
        def stream(self) -> None:
            resp = self.client.post("/v1/chat/completions", data=BODY, headers=HEADERS)
            if resp.status_code == 200 and resp.content:
                STATE["events"] += TOKENS  # content events; the mock's output length is fixed
                STATE["requests"] += 1

else:
    from loadkit.results.writer import RecordWriter
    from loadkit.scenario import load_scenario
    from loadkit.traffic.context import RunContext
    from loadkit.traffic.gctune import quiet_gc
    from loadkit.traffic.users import build_user_classes

    _SCENARIO = load_scenario(os.environ["BENCH_SCENARIO"])
    _WRITER = RecordWriter(os.environ["BENCH_RECORDS"])
    CTX = RunContext(
        scenario=_SCENARIO,
        endpoints={"local": URL},
        headers={},
        run_id="bench",
        seed=_SCENARIO.seed,
        rtt_ms={"local": 0.0},
        run_t0=time.perf_counter(),
        sink=_WRITER,
    )
    (_Base,) = build_user_classes(_SCENARIO, CTX)
    # loadkit's own locustfile does this once users are spawned (loadkit.traffic.gctune)
    events.spawning_complete.add_listener(lambda **_: quiet_gc())

    class LoadkitUser(_Base):  # type: ignore[misc, valid-type]
        def on_start(self) -> None:
            super().on_start()
            execute = self.llm.execute

            def timed(call: Any, t_intended_ms: float | None = None) -> Any:
                res = execute(call, t_intended_ms)
                rec = res.record
                if rec.outcome == "ok":  # as the ceiling counts: answered requests only
                    STATE["requests"] += 1
                    STATE["events"] += rec.completion_tokens
                truth = res.headers[-1].get("x-mock-ttft-ms") if res.headers else None
                if truth is not None and not math.isnan(rec.ttft_ms):
                    STATE["ttft_err"].append(rec.ttft_ms - float(truth))
                    STATE["t_err"].append(CTX.run_t0 + rec.t_sent / 1000.0)  # when sent
                return res

            self.llm.execute = timed

    _Base.abstract = True  # only the wrapped class runs

    @events.quitting.add_listener
    def _close_writer(environment: Any, **_: Any) -> None:
        _WRITER.close()
