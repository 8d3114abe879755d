"""One generation on a region's engine, shared by every API route.

An API handler checks its own request shape, then uses these steps: how long the answer is
(`answer_length`), the engine's `Sequence` (`sequence`), admission (`admit`, whose queue-full
error each API words itself), the first token with the ground-truth headers
(`first_token`), and then either the whole answer (`whole`) or a stream (`stream`).

A stream is the API's frames around each token: `start` (before the first token), `pre` and
`post` (around every token; each token is 4 ASCII bytes) and `end` (after the last). The
headers leave with the first token, the region's decode loop writes tokens 2..n-1 straight
to the transport (each already framed as one HTTP chunk), and the last token leaves with
`end` and the chunked terminator in one write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import HttpVersion11, web

from mocks import frames, params
from mocks.common import RID, T0
from mocks.engine import QueueFull, Sequence
from mocks.errors import ApiError
from mocks.region import Plan, Region
from mocks.words import TOKEN_BYTES, TOKEN_MASK

EOF_TIMEOUT_S = 30.0  # a client that never reads the end of its stream is cut after this


def answer_length(
    region: Region, data: dict[str, Any], plan: Plan, prompt_tokens: int, max_tokens: int | None
) -> tuple[int, bool]:
    """(tokens to generate, whether the answer ends by itself rather than at a cap)."""
    room = max(1, region.profile.context_length - prompt_tokens)
    natural = params.natural_length(data, plan.natural_tokens, room)
    n_out = min(natural, max_tokens or room, room)
    return n_out, n_out == natural


def sequence(
    request: web.Request, region: Region, prompt_tokens: int, cached: int, n_out: int, plan: Plan
) -> Sequence:
    return Sequence(
        prompt_tokens=prompt_tokens,
        cached_tokens=cached,
        n_out=n_out,
        prefill_s=region.prefill_seconds(prompt_tokens - cached, plan.prefill_factor),
        word0=plan.word0,
        transport=request.transport,
    )


def admit(
    request: web.Request,
    region: Region,
    seq: Sequence,
    overloaded: Callable[[QueueFull], ApiError],
) -> str:
    """Submit `seq` to the engine; the queue-full error is the API's own. Returns the id."""
    uid = region.next_id()
    request[RID] = f"req_{uid}"
    try:
        region.engine.submit(seq)
    except QueueFull as exc:
        raise overloaded(exc) from None
    return uid


async def first_token(request: web.Request, region: Region, seq: Sequence) -> dict[str, str] | None:
    """Wait for prefill; the ground-truth headers, or None (client gone, region down)."""
    assert seq.first is not None
    if not await seq.first:
        return None
    # Stamped as the first token goes out, so a late wake-up of the mock is part of the
    # truth and not counted against the client measuring it.
    ttft_s = asyncio.get_running_loop().time() - request[T0]
    return {
        "x-mock-queue-ms": f"{seq.queue_s * 1000:.3f}",
        "x-mock-ttft-ms": f"{ttft_s * 1000:.3f}",
        "x-mock-region": region.name,
    }


async def whole(region: Region, seq: Sequence) -> bool:
    """Generate the whole answer (not streamed); False if it was cut."""
    region.engine.begin_decode(seq)
    assert seq.done is not None
    return await seq.done


def _token(seq: Sequence, i: int) -> bytes:
    return TOKEN_BYTES[(seq.word0 + i) & TOKEN_MASK]


async def stream(
    request: web.Request,
    region: Region,
    seq: Sequence,
    headers: dict[str, str],
    content_type: str,
    start: bytes,
    pre: bytes,
    post: bytes,
    end: bytes,
    farewell: bytes = b"",
) -> web.StreamResponse:
    """Stream `seq`'s tokens framed as `start`, `pre + token + post` each, `end`.

    `farewell`: the API's error event, sent to end the stream cleanly if the region is
    overloaded mid-stream (Anthropic's `event: error`); without one such a stream is cut.
    """
    resp = frames.SseResponse(
        headers={**headers, "Content-Type": content_type, "Cache-Control": "no-cache"}
    )
    # HTTP/1.0 has no chunked encoding: the stream is close-delimited there (the connection
    # closes after it), and the decode loop writes bare frames instead of chunks.
    chunked = request.version >= HttpVersion11
    if chunked:
        resp.enable_chunked_encoding()
        seq.head = b"%x\r\n" % (len(pre) + 4 + len(post)) + pre  # every token is 4 bytes
        seq.tail = post + b"\r\n"
    else:
        seq.head, seq.tail = pre, post
    await resp.prepare(request)
    first = start + pre + _token(seq, 0) + post
    try:
        if seq.n_out <= 1:  # headers, the only token and the end in one segment
            await resp.write_eof(first + end)
            region.engine.begin_decode(seq)
            return resp
        await resp.write(first)  # the headers and the first token, in one segment
    except ConnectionError:
        return resp
    region.engine.begin_decode(seq)
    assert seq.done is not None
    ok = await seq.done
    if not ok:
        tr = request.transport
        if tr is not None and not tr.is_closing():
            if farewell and region.down == "overloaded":
                tr.write(
                    b"%x\r\n%s\r\n0\r\n\r\n" % (len(farewell), farewell) if chunked else farewell
                )
                tr.close()  # after the error event is flushed
            else:
                tr.abort()  # cut mid-stream: no clean end
        return resp
    last = pre + _token(seq, seq.n_out - 1) + post + end
    tr = request.transport
    try:
        if tr is not None and tr.get_write_buffer_size() == 0:
            await resp.write_eof(last)  # nothing queued: it cannot block
        else:  # a slow reader: do not wait on it forever
            await asyncio.wait_for(resp.write_eof(last), EOF_TIMEOUT_S)
    except (TimeoutError, ConnectionError):
        if tr is not None:
            tr.abort()
    return resp
