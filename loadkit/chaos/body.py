"""Request bodies from untrusted clients: bounded reads and bounded parsing.

Everything here answers a hostile body with a `BodyRejected` (the caller turns it into a
4xx) or a `ClientGone` (nobody left to answer), never with a 500 or a wait without end.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

log = logging.getLogger("loadkit.chaos")

MAX_BODY_BYTES = 16 << 20  # default request body limit (decoded bytes)
BODY_TIMEOUT_S = 60.0  # a body that trickles in slower than this is a 408
MAX_DEPTH = 32  # nesting of a control-API document (a fault needs 4)

# The request encodings aiohttp decodes by itself (its parser's list): the body read is then
# already plain, so the header must not reach the upstream with it.
DECODED_ENCODINGS = frozenset({"gzip", "deflate", "br", "zstd"})


class BodyRejected(Exception):
    """A body the proxy will not take; `status` is the 4xx to answer with."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ClientGone(Exception):
    """The client closed its connection before its body was in."""


def decoded_by_server(request: web.BaseRequest) -> bool:
    """Whether aiohttp decompressed this body (so `Content-Encoding` no longer applies)."""
    enc = request.headers.get("Content-Encoding", "")
    return enc.isascii() and enc.lower() in DECODED_ENCODINGS


def too_large(limit: int) -> BodyRejected:
    return BodyRejected(
        413, f"request body over the chaos proxy's limit of {limit} bytes", "body_too_large"
    )


async def read_body(
    request: web.BaseRequest, limit: int, timeout_s: float = BODY_TIMEOUT_S
) -> bytes:
    """The whole body, at most `limit` bytes: a larger declared Content-Length is refused
    before a byte is read (waiting for a terabyte would never end), a body growing past it
    when it does, a slow one after `timeout_s`."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise too_large(limit)
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(limit) from None
    except TimeoutError:
        raise BodyRejected(408, "timed out reading the request body", "timeout") from None
    except (RequestPayloadError, HttpProcessingError) as exc:  # bad gzip, bad chunk sizes...
        detail = " ".join(str(exc).split("message:", 1)[-1].split()) or type(exc).__name__
        raise BodyRejected(400, f"request body: {detail}", "invalid_body") from None
    except ConnectionError:
        log.debug("client %s left before its request body was in", request.remote)
        raise ClientGone from None


def depth_ok(obj: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether `obj` nests at most `limit` containers deep; iterative, and each container is
    looked at once, so a YAML alias fan-out costs what its document does."""
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list | tuple):
            continue
        if depth >= limit:
            return False
        if id(item) in seen:
            continue
        seen.add(id(item))
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return True


def parse_document(raw: bytes, yaml_text: bool, limit: int = MAX_DEPTH) -> Any:
    """JSON (or YAML) from a client; ValueError with a one-line reason when it is invalid or
    nests deeper than `limit` (a parser's own recursion would end in a 500)."""
    what = "YAML" if yaml_text else "JSON"
    try:
        if yaml_text:
            import yaml

            try:
                obj = yaml.safe_load(raw)
            except yaml.YAMLError as exc:
                raise ValueError(f"invalid YAML: {str(exc).splitlines()[0]}") from None
        else:
            try:
                obj = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"invalid JSON: {exc}") from None
    except RecursionError:
        obj = None
        deep = True
    else:
        deep = not depth_ok(obj, limit)
    if deep:
        raise ValueError(f"invalid {what}: nested deeper than {limit} levels")
    return obj


def model_of(body: bytes) -> str:
    """The `model` of a JSON request body, "" when there is none to read; a body nested too
    deep for the parser is a BodyRejected (400), as a fault cannot tell whether it matches."""
    if body[:1] != b"{":
        return ""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ""
    except RecursionError:
        raise BodyRejected(400, "request body: JSON nested too deeply", "invalid_body") from None
    model = obj.get("model") if isinstance(obj, dict) else None
    return model if isinstance(model, str) else ""
