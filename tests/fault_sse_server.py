"""A tiny OpenAI-shaped SSE server with scripted misbehaviour, for the client's failure tests.

The model name picks the behaviour (`cut`, `malformed`, `error_frame`, `reasoning`,
`no_usage`, `tagged`, `no_retry_503`, `date_429`, `flaky_500`, `close_after`,
`always_close`). `close_after` is llama.cpp's server: its headers promise keep-alive, but it
closes the connection after a streamed answer; here a request that arrives on such a
connection before the close is met by the close (the race a pooled client loses).
`always_close` closes every connection before answering. Run as
`python -m tests.fault_sse_server --port 0`: prints its URL, answers GET /health.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import time
import weakref
from collections import Counter

from aiohttp import web

STEP_S = 0.02


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    obj = {"id": "x", "object": "chat.completion.chunk", "model": "m"}
    obj["choices"] = [{"index": 0, "delta": delta, "finish_reason": finish}]
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _usage(prompt: int, completion: int) -> bytes:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion}
    return b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    mode = body["model"]
    seen: Counter[str] = request.app["seen"]
    rid = request.headers.get("x-loadkit-request-id", "")
    seen[rid] += 1
    spent: weakref.WeakSet[asyncio.BaseTransport] = request.app["spent"]
    transport = request.transport
    assert transport is not None
    if mode == "always_close" or (mode == "close_after" and transport in spent):
        transport.close()  # no byte of a response
        return web.Response()
    if mode == "no_retry_503":
        return web.json_response(
            {"error": {"message": "down"}}, status=503, headers={"x-should-retry": "false"}
        )
    if mode == "date_429" and seen[rid] == 1:
        when = email.utils.formatdate(time.time() + 2, usegmt=True)
        return web.json_response(
            {"error": {"message": "slow down"}}, status=429, headers={"retry-after": when}
        )
    if mode == "flaky_500" and seen[rid] <= 2:
        return web.json_response({"error": {"message": "boom"}}, status=500)
    headers = {"Content-Type": "text/event-stream"}
    if mode == "tagged":
        headers["x-loadkit-fault"] = "latency"
    resp = web.StreamResponse(headers=headers)
    await resp.prepare(request)
    await resp.write(_chunk({"role": "assistant"}))
    if mode == "reasoning":
        for _ in range(3):
            await asyncio.sleep(STEP_S)
            await resp.write(_chunk({"reasoning_content": "hmm "}))
    for i in range(5):
        await asyncio.sleep(STEP_S)
        if mode == "cut" and i == 3:
            assert request.transport is not None
            request.transport.close()
            return resp
        if mode == "malformed" and i == 2:
            await resp.write(b"data: {not json\n\n")
            continue
        if mode == "error_frame" and i == 2:
            await resp.write(b'data: {"error": {"message": "overloaded mid-stream"}}\n\n')
            continue
        await resp.write(_chunk({"content": "word "}))
    await resp.write(_chunk({}, "stop"))
    if mode != "no_usage":
        await resp.write(_usage(7, 5))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    if mode == "close_after":
        spent.add(transport)
    return resp


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def serve(port: int) -> None:
    app = web.Application()
    app["seen"] = Counter()
    app["spent"] = weakref.WeakSet()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    sockets = site._server.sockets  # type: ignore[union-attr]
    print(f"http://127.0.0.1:{sockets[0].getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    asyncio.run(serve(p.parse_args().port))


if __name__ == "__main__":
    main()
