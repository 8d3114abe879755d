"""The body of one upstream response on its way to the client, with flow control both ways.

Bytes are buffered until the proxy's handler picks a mode: straight to the client's socket
(no fault, or a fault that acts before content) or queued for a mid-stream fault to read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from loadkit.chaos import upstream as up

HIGH_WATER = 1 << 20  # bytes buffered toward a slow client before the upstream is paused


class RelaySink(up.Sink):
    """Body bytes of one upstream response: buffered until the handler picks a mode, then
    written straight to the client (`go_direct`) or queued for the fault code (`chunks`)."""

    def __init__(self) -> None:
        self.conn: Any = None
        self.pieces: list[bytes] = []
        self.queued = 0
        self.finished = False
        self.error: Exception | None = None
        self.paused = False
        self.direct: asyncio.Transport | None = None
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self, timeout: float | None = None) -> None:
        if self.finished or self.paused or self.pieces:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._waiter, timeout)
        self._waiter = None

    # upstream side (event loop callbacks)
    def raw(self, framed: bytes, size: int) -> None:
        """A whole upstream chunk, framing included: the client speaks chunked too."""
        t = self.direct
        assert t is not None
        if t.is_closing():
            self._client_gone()
            return
        t.write(framed)
        if not self.paused and t.get_write_buffer_size() > HIGH_WATER:
            self._pause()

    def _client_gone(self) -> None:
        if self.conn is not None:
            self.conn.abort()
        self.finished = True
        self._wake()

    def _pause(self) -> None:
        self.paused = True
        if self.conn is not None:
            self.conn.pause()
        self._wake()

    def data(self, piece: bytes) -> None:
        t = self.direct
        if t is not None:
            if t.is_closing():
                self._client_gone()
                return
            t.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            if not self.paused and t.get_write_buffer_size() > HIGH_WATER:
                self._pause()
            return
        self.pieces.append(piece)
        self.queued += len(piece)
        if self.queued > HIGH_WATER and not self.paused and self.conn is not None:
            self.paused = True
            self.conn.pause()
        self._wake()

    def end(self, error: Exception | None) -> None:
        self.finished = True
        self.error = error
        self._wake()

    # handler side
    def unpause(self) -> None:
        if self.paused:
            self.paused = False
            if self.conn is not None:
                self.conn.resume()

    def go_direct(self, transport: asyncio.Transport) -> None:
        pending, self.pieces, self.queued = self.pieces, [], 0
        for piece in pending:
            transport.write(b"%x\r\n%b\r\n" % (len(piece), piece))
        self.direct = transport
        self.raw_ok = True

    async def chunks(self) -> AsyncIterator[bytes]:
        """Pieces as they come; raises the upstream's error after the last one."""
        while True:
            if self.pieces:
                pending, self.pieces, self.queued = self.pieces, [], 0
                self.unpause()
                for piece in pending:
                    yield piece
                continue
            if self.finished:
                if self.error is not None:
                    raise self.error
                return
            await self.wait()

    async def read_all(self) -> bytes:
        return b"".join([piece async for piece in self.chunks()])
