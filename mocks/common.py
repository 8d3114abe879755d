"""What every API route of the mock shares: the error middleware, dialects, header stamps.

Each API (OpenAI, Anthropic, Azure, the copilot route) is a `Dialect`: how an `ApiError`
becomes that API's error body and which headers its answers carry. A route is bound to its
dialect with `bind`, so the one middleware renders errors in the shape the client expects;
requests that match no route (404, 405) are answered in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import HttpVersion11, web

from mocks.errors import ApiError, error_response, too_large
from mocks.region import Region

# Typed request-storage keys, as aiohttp 3.14 asks (string keys raise NotAppKeyWarning).
T0 = web.RequestKey("mock_t0", float)  # loop time the request arrived
RID = web.RequestKey("mock_rid", str)  # x-request-id of the response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RegionLookup = Callable[[web.Request], Region]

log = logging.getLogger("mocks")

SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"


class Dialect:
    """OpenAI's: errors as `{"error": {message, type, param, code}}`, no extra headers."""

    name = "openai"

    def error(self, request: web.Request, exc: ApiError) -> web.Response:
        return error_response(exc)

    def stamp(self, request: web.Request, response: web.StreamResponse) -> None:
        """Headers this API puts on every answer (called as the response is prepared)."""


OPENAI = Dialect()
DIALECT = web.RequestKey("mock_dialect", Dialect)


def bind(dialect: Dialect, handler: Handler) -> Handler:
    """`handler` with its errors and headers in `dialect`'s shape."""

    async def bound(request: web.Request) -> web.StreamResponse:
        request[DIALECT] = dialect
        return await handler(request)

    return bound


def request_id(request: web.Request) -> str:
    """The response's request id (`req_...`), made once per request."""
    rid = request.get(RID)
    if rid is None:
        seed = repr((id(request), time.perf_counter())).encode()
        rid = request[RID] = "req_" + hashlib.blake2b(seed, digest_size=16).hexdigest()
    return rid


# ------------------------------------------------------------------ middleware and signals


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stamp receipt time; every failure leaves as an error in the route's API's shape."""
    request[T0] = asyncio.get_running_loop().time()
    try:
        return await handler(request)
    except ApiError as exc:
        resp = request.get(DIALECT, OPENAI).error(request, exc)
        if exc.close:
            return await _answer_and_close(request, resp)
        return resp
    except web.HTTPException as exc:
        if exc.status == 404:
            msg = (
                f"Unknown request URL: {request.method} {request.path}. Please check the URL "
                "for typos, or see the docs at https://platform.openai.com/docs/api-reference/."
            )
            return error_response(ApiError(404, msg, code="unknown_url"))
        if exc.status == 405:
            msg = f"Method {request.method} is not allowed for {request.path}."
            return error_response(ApiError(405, msg, code="method_not_allowed"))
        if exc.status == 413:
            return error_response(too_large(0))
        return error_response(ApiError(exc.status, exc.reason or "error"))
    except ConnectionError:
        raise  # the client is gone: nobody to answer
    except Exception:
        # A bug, not the client's fault: logged with its traceback, still in the API's shape.
        log.exception("unhandled error in %s %s", request.method, request.path)
        err = ApiError(500, SERVER_ERROR, "server_error", close=True)
        return await _answer_and_close(request, request.get(DIALECT, OPENAI).error(request, err))


async def _answer_and_close(request: web.Request, resp: web.Response) -> web.Response:
    """Send `resp`, then close at once: no lingering read of a body that may never come."""
    try:
        await resp.prepare(request)
        await resp.write_eof()
    except ConnectionError:
        pass
    if request.protocol is not None:
        request.protocol.force_close()  # the write above is flushed before the close
    return resp


async def stamp_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`x-request-id`, `openai-processing-ms` and the dialect's own headers on every answer.

    Also: an HTTP/1.0 answer without a length (a stream, a large body written in pieces) is
    close-delimited, so the connection must close after it even if the client asked for
    keep-alive. aiohttp drops keep-alive for such an answer only in the header it writes,
    not for the connection, which then stayed open (idle) after the answer had ended.
    """
    h = response.headers
    if "x-request-id" not in h:
        h["x-request-id"] = request_id(request)
    if "openai-processing-ms" not in h:
        t0 = request.get(T0)
        ms = (asyncio.get_running_loop().time() - t0) * 1000 if t0 is not None else 0.0
        h["openai-processing-ms"] = str(round(ms))
    if (
        request.version < HttpVersion11
        and response.content_length is None
        and not response.chunked
        and response.status not in (204, 304)
    ):
        response.force_close()
    dialect = request.get(DIALECT)
    if dialect is not None:
        dialect.stamp(request, response)


# ------------------------------------------------------------------ request checks


OVERLOADED = "The server is overloaded or not ready yet."


def check_region(region: Region) -> None:
    """503 while the region is taken down or overloaded (the dialect words it: Anthropic's
    overload is its 529 `overloaded_error`)."""
    if region.down == "overloaded":
        raise ApiError(503, OVERLOADED, "server_error", code="overloaded")
    if region.down:
        raise ApiError(
            503,
            f"The server is temporarily unavailable (region {region.name} is "
            "down). Please try again later.",
            "server_error",
            code="service_unavailable",
        )


def key_state(region: Region, key: str) -> str:
    """ "ok", "missing" or "wrong" for `key` under the region's `require_api_key`."""
    p = region.profile
    if not p.require_api_key:
        return "ok"
    if not key:
        return "missing"
    return "ok" if key in p.api_keys else "wrong"


def bearer(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


def shown_key(key: str) -> str:
    """A key as error messages show it: its ends only."""
    return f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 7 else "***"


def ended(region: Region) -> web.Response:
    """The answer to a request the engine dropped before it was answered: the API's
    overload error if the region is overloaded, else a bare 503 (the client has gone, or
    the outage has already cut the connection)."""
    if region.down == "overloaded":
        check_region(region)
    return web.Response(status=503)
