"""A streamed body as the client reads it: one block of complete lines per socket read,
stamped with when its bytes arrived (`loadkit.traffic.client` reads every API's stream
through it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from geventhttpclient.response import HTTPConnectionClosed

from loadkit.traffic.rxstamp import StampedSocket


def body_blocks(resp: Any, whole_reads: bool = False) -> Iterator[tuple[float, bytes]]:
    """(arrival time, complete lines) per socket read of a streamed body, then (t, b"").

    With `whole_reads` every read's bytes come as they are (chunked text, where a line
    is no unit of the answer).

    The lines are joined by `\\n` without the last one's ending; the final empty block is
    a blank line that delivers an event the body ended without one after. This drains
    geventhttpclient's body buffer directly (`readline(b"\\n")` costs a call, a search, a
    copy and a delete per line) with the same reads, feeds and end-of-body test as its
    `readline`; a response without that buffer falls back to `readline`.
    """
    perf = time.perf_counter
    buf = getattr(resp, "_body_buffer", None)
    if not isinstance(buf, bytearray):
        while line := resp.readline(b"\n"):
            yield perf(), line.removesuffix(b"\n")
        yield perf(), b""
        return
    sock = resp._sock
    stamped = isinstance(sock, StampedSocket)
    now = sock.arrived if stamped else perf()  # the read that brought the headers
    while True:
        end = len(buf) if whole_reads else buf.rfind(b"\n")
        if end > 0 and whole_reads:
            block = bytes(buf)
            del buf[:]
            yield now, block
        elif end >= 0 and not whole_reads:
            block = bytes(buf[:end])
            del buf[: end + 1]
            yield now, block
        if resp.message_complete:
            if buf:
                yield now, bytes(buf)
                del buf[:]
            yield now, b""
            return
        sock = resp._sock
        if sock is None:
            raise HTTPConnectionClosed("connection closed.")
        data = sock.recv(resp.block_size)
        now = sock.arrived if stamped else perf()
        resp.feed(data)
