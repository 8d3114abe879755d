"""Connection-level defences of loadkit's own listeners (the mock's, the chaos proxy's),
below routing and middleware.

aiohttp has no header-read timeout (a connection that trickles its headers one byte a second
is kept for its whole keep-alive time, an hour by default) and answers requests it cannot
parse (bad request line, header too long, an HTTP/0.9 request) in plain text from inside
its protocol, where no middleware runs. `GuardedRunner` serves an app with a request
handler that adds both:

- a header timeout: from the connection's start, or from the first byte of a later
  request on a kept-alive connection, until that request's headers are complete; past it
  the client gets a 408 and the connection is closed;
- the server's own error shape for everything aiohttp's protocol answers itself.

The server says what its errors look like (`ErrorShape`: a JSON body for a status and a
message). Idle kept-alive connections are closed by aiohttp's `keepalive_timeout`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("loadkit.serving")

# (status, message, client error?) -> the JSON body a server answers errors with
ErrorShape = Callable[[int, str, bool], dict[str, Any]]


def _parse_error_message(status: int, exc: BaseException | None, message: str | None) -> str:
    """First line of aiohttp's reason, without the echo of the client's bytes it adds."""
    text = getattr(exc, "message", None) or message or ""
    first = str(text).strip().splitlines()[0].rstrip(":").strip() if text else ""
    what = "could not be parsed as HTTP" if status < 500 else "failed"
    return f"The request {what}: {first[:200]}." if first else f"The request {what}."


def _raw(shape: ErrorShape, status: int, reason: str, message: str) -> bytes:
    """A whole error response, written straight to the transport (no request object exists)."""
    body = json.dumps(shape(status, message, True)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _raw_408(shape: ErrorShape) -> bytes:
    return _raw(shape, 408, "Request Timeout", "Timed out waiting for the request headers.")


# A request line of HTTP/1.x ends with its version; HTTP/0.9's (`GET /path`) has none, and
# its client waits for an answer right after it, which aiohttp would never send.
_VERSIONED = re.compile(rb"^\S+ \S+ HTTP/\d\.\d\r?$")


class _GuardedHandler(RequestHandler):
    """aiohttp's request handler plus a header timeout and the server's own error shape."""

    def __init__(
        self, manager: web.Server, *, header_timeout_s: float, shape: ErrorShape, **kwargs: Any
    ) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._shape = shape
        self._header_timer: asyncio.TimerHandle | None = None
        self._line = b""  # the request line so far, until it is checked

    def _between_requests(self) -> bool:
        """No request is being handled and none is complete: its headers are still due.

        The same test aiohttp's keep-alive timer uses: the handler loop waits for a message.
        """
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def _arm(self) -> None:
        if self._header_timer is None and self._header_timeout_s > 0:
            self._header_timer = self._loop.call_later(self._header_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _timed_out(self) -> None:
        self._header_timer = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not self._between_requests():
            return  # the request's headers arrived after all; it is being handled
        log.debug("header timeout: closing a connection")
        transport.write(_raw_408(self._shape))
        self.force_close()  # closes after the 408 is flushed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()  # the first request's headers are due from the start

    def _refuse_unversioned(self, data: bytes) -> bool:
        """Answer an HTTP/0.9 request line with a 400 at once (True: done with it)."""
        self._line += data[:512]
        end = self._line.find(b"\n")
        if end < 0:
            if len(self._line) < 512:
                return False
            end = len(self._line)
        line, self._line = self._line[:end], b""
        if _VERSIONED.match(line):
            return False
        transport = self.transport
        if transport is not None and not transport.is_closing():
            message = "The request line has no HTTP/1.x version (HTTP/0.9 is not served)."
            transport.write(_raw(self._shape, 400, "Bad Request", message))
            self.force_close()
            transport.close()
        return True

    def data_received(self, data: bytes) -> None:
        if data and self._between_requests():
            self._arm()  # a new request starts on a kept-alive connection
            if (self._line or not self._messages) and self._refuse_unversioned(data):
                return
        super().data_received(data)
        if self._header_timer is not None and (self._messages or not self._between_requests()):
            self._disarm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's own error answers (bad request line, header too long...) in the
        server's shape."""
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
        else:
            log.debug("unparseable request: %s", exc)
        if request.writer.output_size > 0:  # as aiohttp: too late for another response
            raise ConnectionError("response already sent, cannot send an error")
        body = self._shape(status, _parse_error_message(status, exc, message), status < 500)
        resp = web.json_response(body, status=status)
        resp.force_close()
        return resp


class _GuardedServer(web.Server):
    """Builds `_GuardedHandler`s instead of aiohttp's plain ones."""

    def __init__(
        self, *args: Any, header_timeout_s: float, shape: ErrorShape, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._shape = shape

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(
            self,
            loop=self._loop,
            header_timeout_s=self._header_timeout_s,
            shape=self._shape,
            **self._kwargs,
        )


class GuardedRunner(web.AppRunner):
    """An AppRunner whose connections get the header timeout and the server's error shape."""

    def __init__(
        self, app: web.Application, *, header_timeout_s: float, shape: ErrorShape, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._shape = shape

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return _GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=asyncio.get_running_loop(),
            header_timeout_s=self._header_timeout_s,
            shape=self._shape,
            **plain._kwargs,  # the handler options aiohttp collected (app handler_args...)
        )
