"""Reading request bodies from untrusted clients: a deadline, a size limit, content codings.

aiohttp's own decompression is switched off for the mock's listeners (`auto_decompress`),
because older aiohttp versions inflate a whole body before anyone can count it and report
a corrupt stream as a 500. Here the raw body is read under `limit` bytes and `deadline_s`,
then inflated in slices with the same `limit` on the output (a decompression bomb ends at
413 after at most `limit` bytes of work), yielding to the event loop between slices.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any, Protocol

from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from mocks.errors import ApiError, too_large

# a client that left mid-body, or body framing (chunked) aiohttp could not parse
_BROKEN = (ConnectionError, ClientPayloadError, RequestPayloadError, HttpProcessingError)
SLICE = 256 * 1024  # inflate this much output between two yields to the event loop

INVALID_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)


class _Inflater(Protocol):
    def feed(self, data: bytes, max_out: int) -> bytes: ...
    def more(self, max_out: int) -> bytes: ...
    def finished(self) -> bool: ...


class _Zlib:
    """gzip (wbits 31) or deflate (zlib wrapper, or raw deflate as some clients send it)."""

    def __init__(self, gzip: bool, first: int) -> None:
        wbits = 31 if gzip else (15 if first & 0x0F == 8 else -15)
        self._d = zlib.decompressobj(wbits)

    def feed(self, data: bytes, max_out: int) -> bytes:
        return self._d.decompress(data, max_out)

    def more(self, max_out: int) -> bytes:
        return self._d.decompress(self._d.unconsumed_tail, max_out)

    def finished(self) -> bool:
        return self._d.eof and not self._d.unconsumed_tail


class _Brotli:
    def __init__(self) -> None:
        import brotli

        self._d = brotli.Decompressor()

    def feed(self, data: bytes, max_out: int) -> bytes:
        return self._d.process(data, output_buffer_limit=max_out)

    def more(self, max_out: int) -> bytes:
        return self._d.process(b"", output_buffer_limit=max_out)

    def finished(self) -> bool:
        return bool(self._d.is_finished())


def _brotli_bounded() -> bool:
    """Only a brotli binding whose `process` takes an output limit can be bounded."""
    try:
        import brotli

        brotli.Decompressor().process(b"", output_buffer_limit=1)
    except Exception:
        return False
    return True


def _unsupported(coding: str) -> ApiError:
    return ApiError(
        415,
        f"Unsupported Content-Encoding {coding[:40]!r}: send the body as identity, gzip, "
        "deflate or br.",
        code="unsupported_content_encoding",
    )


def _inflater(coding: str, first: int) -> _Inflater:
    if coding in ("gzip", "x-gzip"):
        return _Zlib(True, first)
    if coding == "deflate":
        return _Zlib(False, first)
    if coding == "br" and _brotli_bounded():
        return _Brotli()
    raise _unsupported(coding)


def _corrupt(coding: str) -> ApiError:
    return ApiError(
        400,
        f"The request body could not be decoded as Content-Encoding {coding}.",
        code="invalid_content_encoding",
    )


async def inflate(raw: bytes, coding: str, limit: int) -> bytes:
    """`raw` decoded per `coding`: 413 past `limit` bytes of output, 400 if corrupt."""
    if not raw:
        return raw
    d = _inflater(coding, raw[0])
    out = bytearray()
    try:
        piece = d.feed(raw, min(SLICE, limit + 1 - len(out)))
        while True:
            out += piece
            if len(out) > limit:
                raise too_large(limit)
            if d.finished() or not piece:
                break
            await asyncio.sleep(0)  # a large body must not hold up other streams
            piece = d.more(min(SLICE, limit + 1 - len(out)))
    except ApiError:
        raise
    except Exception:  # zlib.error, brotli.error: the stream is not what it claims
        raise _corrupt(coding) from None
    if not d.finished():  # truncated stream
        raise _corrupt(coding)
    return bytes(out)


def _coding(request: web.Request) -> str:
    codings = [
        c.strip().lower()
        for c in request.headers.getall("Content-Encoding", [])
        for c in c.split(",")
        if c.strip()
    ]
    codings = [c for c in codings if c != "identity"]
    if len(codings) > 1:
        raise _unsupported(", ".join(codings))
    return codings[0] if codings else ""


async def read_body(request: web.Request, limit: int, deadline_s: float) -> bytes:
    """The decoded body: 413 past `limit` (before and after decoding), 408 past `deadline_s`.

    The deadline runs from the first read (right after the headers), so a client that
    stops sending or trickles its body gets a 408 and its connection is closed.
    """
    coding = _coding(request)
    length = request.content_length
    if length is not None and length > limit:
        raise too_large(limit)
    content = request.content
    if content.is_eof():  # the whole body has arrived (the usual case): take it, no await
        try:
            raw = content.read_nowait()
        except _BROKEN:
            raise _cut_short() from None
        if len(raw) > limit:
            raise too_large(limit)
    else:
        raw = await _read_slowly(request, limit, deadline_s)
    return await inflate(raw, coding, limit) if coding else raw


def _cut_short() -> ApiError:
    return ApiError(400, "The request body was cut short.", code="incomplete_body")


async def _read_slowly(request: web.Request, limit: int, deadline_s: float) -> bytes:
    body = bytearray()
    try:
        async with asyncio.timeout(deadline_s if deadline_s > 0 else None):
            while True:
                chunk = await request.content.read(65536)
                if not chunk:
                    break
                body += chunk
                if len(body) > limit:
                    raise too_large(limit)
    except TimeoutError:
        raise ApiError(
            408, "Timed out reading the request body.", code="timeout", close=True
        ) from None
    except _BROKEN:  # the client left or sent broken framing
        raise _cut_short() from None
    return bytes(body)


def parse_object(body: bytes) -> dict[str, Any]:
    """A JSON object, or OpenAI's 400; nesting too deep for the parser is a 400 too."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, INVALID_JSON) from None
    if not isinstance(data, dict):
        raise ApiError(400, INVALID_JSON)
    return data
