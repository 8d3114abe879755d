"""Arrival times from the kernel: when a read's bytes reached the socket, not when it returned.

A load generator timestamps a token when its event loop gets round to reading it; with a
thousand streams in one process that can be milliseconds after the bytes arrived, and the
lag would count as the service's TTFT. On Linux a TCP socket with `SO_TIMESTAMPNS` hands
each `recvmsg` the receive time of the newest segment it returns; `StampedSocket.recv`
keeps that time (mapped onto `time.perf_counter`, the clock of every other timing in a
record) in `arrived`. Elsewhere, and for TLS connections (the TLS layer reads the socket
itself), `arrived` is the time the read returned, as before; so it is for the first packets
after the first socket of the machine asks for stamps (Linux switches them on in deferred
work).
"""

from __future__ import annotations

import socket
import struct
import sys
import time

import gevent.socket

# Python's socket module does not name it; 35 is Linux's asm-generic value (x86, arm64...),
# and the control message that carries the stamp has the same number.
SO_TIMESTAMPNS: int | None = getattr(
    socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None
)
TIMESPEC = struct.Struct("@ll")  # struct timespec: seconds, nanoseconds
_ANC_SIZE = socket.CMSG_SPACE(TIMESPEC.size)
# A stamp further back than this is not trusted (the wall clock was stepped meanwhile).
_MAX_AGE_S = 5.0

perf = time.perf_counter
wall = time.time


class StampedSocket(gevent.socket.socket):
    """A gevent TCP socket whose `recv` records when the bytes it returns arrived."""

    __slots__ = ("arrived",)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, anc, _, _ = self.recvmsg(bufsize, _ANC_SIZE, flags)
        now = perf()
        if anc and anc[0][1] == SO_TIMESTAMPNS and len(anc[0][2]) == TIMESPEC.size:
            sec, nsec = TIMESPEC.unpack(anc[0][2])
            age = wall() - (sec + nsec * 1e-9)
            self.arrived = now - age if 0.0 <= age < _MAX_AGE_S else now
        else:
            self.arrived = now
        return data


def stamped_tcp_socket(family: int, socktype: int, protocol: int) -> gevent.socket.socket:
    """A connection pool's socket factory: kernel timestamps on, where the OS has them."""
    if SO_TIMESTAMPNS is not None:
        sock = StampedSocket(family, socktype, protocol)
        sock.arrived = perf()
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            return sock
        except OSError:
            sock.close()
    return gevent.socket.socket(family, socktype, protocol)
