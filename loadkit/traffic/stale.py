"""Stale pooled connections: a reused keep-alive socket the server closed meanwhile.

Some servers close a connection after a response although their headers promise
keep-alive (llama.cpp's `llama-server` does after every streamed answer). A client that
sends its next request on that pooled socket a fraction of a millisecond later, before
the close arrives, gets "connection closed" or a reset with no byte of a response.
urllib3, httpx and Go's net/http treat that case as a stale connection and send the
request again at once on a fresh one; geventhttpclient does it only for idempotent
methods, and LLM calls are POSTs. `ReuseTracker` tells the client whether the socket
its greenlet just used came from the pool, and hands out a fresh socket for the one
resend, so the client can do what those clients do (see `LLMClient._send`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import gevent.local
from geventhttpclient.response import HTTPConnectionClosed

# What a stale socket looks like when the request is sent or its response head is read.
STALE_ERRORS = (HTTPConnectionClosed, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class ReuseTracker:
    """Wraps one geventhttpclient pool: per greenlet, was the last socket reused?"""

    def __init__(self, client: Any) -> None:
        pool = client._connection_pool
        self._pool = pool
        self._local = gevent.local.local()
        self._get = pool.get_socket
        self._create = pool._create_socket
        pool.get_socket = self._get_socket
        pool._create_socket = self._create_socket

    @property
    def reused(self) -> bool:
        """Whether the current greenlet's last socket was an idle pooled one."""
        return bool(getattr(self._local, "reused", False))

    @contextlib.contextmanager
    def fresh(self) -> Iterator[None]:
        """Within this block the current greenlet gets a new connection, never a pooled one."""
        self._local.fresh = True
        try:
            yield
        finally:
            self._local.fresh = False

    def _get_socket(self) -> Any:
        self._local.reused = True  # a socket the pool creates resets this in _create_socket
        if not getattr(self._local, "fresh", False):
            return self._get()
        pool = self._pool
        pool._semaphore.acquire()
        try:
            return pool._create_socket()
        except BaseException:
            pool._semaphore.release()
            raise

    def _create_socket(self) -> Any:
        self._local.reused = False
        return self._create()
