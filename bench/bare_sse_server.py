"""The benchmark's baseline: the least work an aiohttp server can do to pace an SSE stream.

It replays a template captured from the mock provider (the same event bytes, the same step
of each event) on an absolute schedule per stream, `first event + step x step_ms`, so it
never drifts. It parses nothing, models nothing and logs nothing: whatever the mock spends
beyond this is the price of its engine model, which is what the benchmark's ratio measures.

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

from aiohttp import web

from bench.template import Template


def _batches(template: Template) -> list[tuple[int, bytes]]:
    """Events due at the same step are written together, as one write, like a real engine."""
    out: list[tuple[int, bytes]] = []
    for step, event in zip(template.steps, template.events, strict=True):
        if out and out[-1][0] == step:
            out[-1] = (step, out[-1][1] + event)
        else:
            out.append((step, event))
    return out


def build_app(template: Template, step_ms: float, batch_writes: bool = False) -> web.Application:
    step_s = step_ms / 1000.0
    first_s = template.first_delay_ms / 1000.0
    if batch_writes:
        writes = _batches(template)
    else:
        writes = list(zip(template.steps, template.events, strict=True))
    headers = {"Content-Type": template.content_type, "Cache-Control": "no-cache"}

    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        loop = asyncio.get_running_loop()
        resp = web.StreamResponse(headers=headers)
        await resp.prepare(request)
        t0 = loop.time() + first_s
        try:
            for step, chunk in writes:
                delay = t0 + step * step_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await resp.write(chunk)
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away (the benchmark closes its streams at a window's end)
        return resp

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", stream)
    app.router.add_get("/health", health)
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
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--batch-writes", action="store_true", help="write events due at one step together"
    )
    args = parser.parse_args(argv)
    app = build_app(Template.load(args.template), args.step_ms, args.batch_writes)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        asyncio.run(_serve(app, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
