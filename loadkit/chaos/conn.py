"""What faults do to the client's connection: reset it, or hold it open sending nothing.

Shared by the proxy (an outage resets the streams in flight) and the fault behaviours.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time

from aiohttp import web

HANG_CAP_S = 900.0  # a hang or stall ends by itself after this long (no leak if nobody reads)


def alive(request: web.Request) -> bool:
    t = request.transport
    return t is not None and not t.is_closing()


def reset(transport: asyncio.BaseTransport | None) -> None:
    """Close with a TCP RST (SO_LINGER 0): the client sees `connection reset by peer`."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def hold(request: web.Request, cap_s: float = HANG_CAP_S) -> None:
    """Keep the connection open, sending nothing, until the client leaves (or the cap)."""
    deadline = time.perf_counter() + cap_s
    while alive(request) and time.perf_counter() < deadline:
        await asyncio.sleep(0.2)
