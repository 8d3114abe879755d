"""The benchmark's baseline: the least work an aiohttp server can do to pace SSE streams.

It replays a template captured from the mock provider (the same event bytes, the same step
of each event) and nothing else: no parsing of the request, no engine model, no logging.
Whatever the mock spends beyond it is the price of its engine model, which is what the
benchmark's ratio measures. Three ways to pace; the benchmark's baseline is the best of them:

- `stream`: each request is a task that sleeps until `first event + step x step_ms` (an
  absolute schedule, no drift) and writes its events through `StreamResponse.write`; the
  obvious aiohttp server.
- `ticker`: one loop on an absolute grid of `step_ms` writes every open stream's next
  events, pre-framed as HTTP chunks, straight to its transport (no task wake-up per event).
  Streams write their first events on arrival and join the grid, as in an inference engine
  and as the mock's decode loop does: each step is one burst of writes.
- `wheel`: the same loop ticking every 1 ms; a stream is written at the tick it joined at,
  once per step. Each stream keeps its own phase, so the writes of a step are spread over
  it instead of one burst.

`python -m bench.bare_sse_server --template T.json --step-ms 40 --port 0` prints its base
URL as the first stdout line and answers `GET /health`, like the mock.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.template import Template

MODES = ("stream", "ticker", "wheel")
WHEEL_SLOT_MS = 1.0


def _by_step(template: Template) -> list[list[bytes]]:
    """Events grouped by the step they are due at (index = step)."""
    groups: list[list[bytes]] = [[] for _ in range(template.steps[-1] + 1)]
    for step, event in zip(template.steps, template.events, strict=True):
        groups[step].append(event)
    return groups


def _framed(events: list[bytes]) -> bytes:
    body = b"".join(events)
    return b"%x\r\n%b\r\n" % (len(body), body)


class _Wheel:
    """Absolute-deadline loop writing open streams' next steps straight to their transports.

    The step is cut into `slots` ticks; a stream joins the bucket of the tick that just ran,
    so it is written every `slots` ticks, one step apart. With one slot this is the engine's
    decode loop (every stream written back to back at each step); with more, the same
    writes are spread over the step and each burst is `slots` times shorter.
    """

    def __init__(self, steps: list[bytes], step_s: float, slots: int) -> None:
        self.steps = steps  # pre-framed bytes of steps 1..n (index 0 unused)
        self.k = max(1, slots)
        self.slot_s = step_s / self.k
        self.buckets: list[list[list[Any]]] = [[] for _ in range(self.k)]
        self.cursor = 0
        self.n_open = 0
        self.wake = asyncio.Event()

    def add(self, transport: Any, done: asyncio.Future[bool]) -> None:
        self.buckets[self.cursor].append([transport, 1, done])  # [transport, next step, done]
        self.n_open += 1
        self.wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while True:
            if not self.n_open:
                self.wake.clear()
                await self.wake.wait()
                next_t = loop.time()
            next_t += self.slot_s
            delay = next_t - loop.time()
            await asyncio.sleep(delay if delay > 0 else 0)
            if delay < -0.2:
                next_t = loop.time()
            self.cursor = (self.cursor + 1) % self.k
            self.tick(self.cursor)

    def tick(self, b: int) -> None:
        keep = []
        last = len(self.steps) - 1
        steps = self.steps
        for entry in self.buckets[b]:
            tr, k, done = entry
            if tr.is_closing():
                done.set_result(False)
                continue
            tr.write(steps[k])
            if k >= last:
                done.set_result(True)
                continue
            entry[1] = k + 1
            keep.append(entry)
        self.n_open -= len(self.buckets[b]) - len(keep)
        self.buckets[b] = keep


def build_app(template: Template, step_ms: float, mode: str = "stream") -> web.Application:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    step_s = step_ms / 1000.0
    first_s = template.first_delay_ms / 1000.0
    groups = _by_step(template)
    headers = {"Content-Type": template.content_type, "Cache-Control": "no-cache"}
    slots = max(1, round(step_ms / WHEEL_SLOT_MS)) if mode == "wheel" else 1
    ticker = _Wheel([_framed(g) for g in groups], step_s, slots)

    async def paced(request: web.Request) -> web.StreamResponse:
        await request.read()
        loop = asyncio.get_running_loop()
        resp = web.StreamResponse(headers=headers)
        t0 = loop.time() + first_s
        try:
            await resp.prepare(request)
            for step, events in enumerate(groups):
                delay = t0 + step * step_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await resp.write(b"".join(events))  # one chunk per step, as the mock writes
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away (the benchmark closes its streams at a window's end)
        return resp

    async def gridded(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers=headers)
        try:
            await resp.prepare(request)
            if first_s > 0:
                await asyncio.sleep(first_s)
            await resp.write(b"".join(groups[0]))  # flushes the headers too
            if len(groups) > 1:
                done = asyncio.get_running_loop().create_future()
                ticker.add(request.transport, done)
                if not await done:
                    return resp
            await resp.write_eof()
        except ConnectionResetError:
            pass
        return resp

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "mode": mode})

    async def start_ticker(app: web.Application) -> Any:
        task = asyncio.get_running_loop().create_task(ticker.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app = web.Application()
    app.router.add_post("/v1/chat/completions", paced if mode == "stream" else gridded)
    app.router.add_get("/health", health)
    if mode != "stream":
        app.cleanup_ctx.append(start_ticker)
    return app


async def _serve(app: web.Application, host: str, port: int) -> None:
    runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    site = web.SockSite(runner, sock)
    await site.start()
    print(f"http://{host}:{sock.getsockname()[1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bare_sse_server", description=__doc__)
    parser.add_argument("--template", type=Path, required=True, help="JSON from bench_mock")
    parser.add_argument("--step-ms", type=float, required=True, help="pacing of one step")
    parser.add_argument("--mode", choices=MODES, default="stream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    app = build_app(Template.load(args.template), args.step_ms, args.mode)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        asyncio.run(_serve(app, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
