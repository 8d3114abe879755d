"""A team's own copilot written with a common web framework (aiohttp), not loadkit's mock:
`POST /ask {"q": ..., "max_words": N}` answers chunked `text/plain`, word by word, after a
short "retrieval" pause. Started by the tests as `python -m tests.copilot_app PORT`."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

WORDS = ("our", "refund", "policy", "covers", "thirty", "days", "from", "delivery")


async def ask(request: web.Request) -> web.StreamResponse:
    try:
        doc = await request.json()
        question = str(doc["q"])
        n = int(doc.get("max_words", 20))
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": {"message": "bad request"}}, status=400)
    await asyncio.sleep(0.02)  # retrieval
    resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(max(1, n)):
        await resp.write((WORDS[(i + len(question)) % len(WORDS)] + " ").encode())
        await asyncio.sleep(0.005)
    await resp.write_eof()
    return resp


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    app = web.Application()
    app.router.add_post("/ask", ask)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)


if __name__ == "__main__":
    main()
