"""A lean HTTP/1.1 client for the proxy's upstream side, built on asyncio protocols.

Why not aiohttp's client: every body chunk it receives wakes a task through a StreamReader,
which at tens of thousands of SSE events per second is most of a proxy's CPU. Here the
body arrives in `data_received` and goes straight to a sink: the pass-through sink writes
it to the client's socket in the same callback (no task switch per event), the queue sink
feeds the fault code that needs to look at frames. Keep-alive connections are pooled per
upstream origin; TLS works through asyncio's `ssl` support.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from loadkit.apis.urls import split_base

MAX_HEAD_BYTES = 256 * 1024
MAX_IDLE_PER_ORIGIN = 1024


class UpstreamError(Exception):
    """The upstream could not be reached, or broke the response."""


@dataclass
class Head:
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default


class Sink:
    """Where body bytes go; every method is called from the event loop, synchronously.

    A sink with `raw_ok` takes whole chunks still in their chunked framing (`raw`), to
    forward to a chunked client as they are.
    """

    raw_ok = False

    def raw(self, framed: bytes, size: int) -> None:
        raise NotImplementedError

    def data(self, piece: bytes) -> None:
        raise NotImplementedError

    def end(self, error: Exception | None) -> None:
        raise NotImplementedError


class _Conn(asyncio.Protocol):
    """One upstream connection: parses one response at a time, body to the current sink."""

    def __init__(self, pool: Pool, key: tuple[str, str, int]) -> None:
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.head_fut: asyncio.Future[Head] | None = None
        self.sink: Sink | None = None
        self.buf = b""
        self.state = "idle"  # idle | head | body | done
        self.mode = ""  # length | chunked | close | none
        self.remaining = 0  # length mode: body bytes left; chunked: bytes left in this chunk
        self.chunk_state = "size"  # size | data | crlf | trailer
        self.keep_alive = True
        self.got_bytes = False
        self.closed = False
        self.no_body = False

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.head_fut is not None and not self.head_fut.done():
            self.head_fut.set_exception(
                UpstreamError(f"connection closed before the response ({exc or 'EOF'})")
            )
        elif self.state == "body":
            if self.mode == "close":
                self._finish(None)
            else:
                self._finish(UpstreamError(f"connection closed mid-body ({exc or 'EOF'})"))

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.state == "head":
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD_BYTES:
                    self._fail_head(UpstreamError("response head too large"))
                return
            head_bytes, data = self.buf[:end], self.buf[end + 4 :]
            self.buf = b""
            try:
                head = self._parse_head(head_bytes)
            except (ValueError, IndexError) as exc:
                self._fail_head(UpstreamError(f"bad response head: {exc}"))
                return
            if head.status < 200:  # 100 Continue and friends: wait for the real one
                self.buf = data
                if data:
                    self.data_received(b"")
                return
            self.state = "body"
            assert self.head_fut is not None
            if not self.head_fut.done():
                self.head_fut.set_result(head)
            if self.mode == "none":
                self._finish(None)
                return
            if not data:
                return
        if self.state == "body":
            self._body(data)

    # -- parsing ----------------------------------------------------------------------------

    def _parse_head(self, raw: bytes) -> Head:
        lines = raw.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        head = Head(int(code), reason)
        for line in lines[1:]:
            if not line:
                continue
            k, _, v = line.partition(":")
            head.headers.append((k.strip(), v.strip()))
        te = head.get("transfer-encoding").lower()
        cl = head.get("content-length")
        conn = head.get("connection").lower()
        self.keep_alive = version == "HTTP/1.1" and "close" not in conn
        if self.no_body or head.status in (204, 304) or head.status < 200:
            self.mode = "none"
        elif "chunked" in te:
            self.mode, self.chunk_state = "chunked", "size"
        elif cl:
            self.mode, self.remaining = "length", int(cl)
            if self.remaining == 0:
                self.mode = "none"
        else:
            self.mode, self.keep_alive = "close", False
        return head

    def _body(self, data: bytes) -> None:
        if self.mode == "length":
            if len(data) >= self.remaining:
                piece, self.remaining = data[: self.remaining], 0
                if piece:
                    self._deliver(piece)
                self._finish(None)
            else:
                self.remaining -= len(data)
                self._deliver(data)
        elif self.mode == "close":
            self._deliver(data)
        elif self.mode == "chunked":
            self._chunked(data)

    def _chunked(self, data: bytes) -> None:
        if not self.buf and self.chunk_state == "size":
            # Fast path: the read holds exactly one whole chunk (one SSE event, usually).
            eol = data.find(b"\r\n")
            if 0 < eol < 10:
                try:
                    size = int(data[:eol], 16)
                except ValueError:
                    size = -1
                if size > 0 and len(data) == eol + size + 4 and data.endswith(b"\r\n"):
                    sink = self.sink
                    if sink is not None:
                        if sink.raw_ok:
                            sink.raw(data, size)
                        else:
                            sink.data(data[eol + 2 : eol + 2 + size])
                    return
        buf = self.buf + data if self.buf else data
        self.buf = b""
        pos, n = 0, len(buf)
        out: list[bytes] = []
        while pos < n and self.state == "body":
            if self.chunk_state == "data":
                take = min(self.remaining, n - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.chunk_state = "crlf"
            elif self.chunk_state == "crlf":
                if n - pos < 2:
                    self.buf = buf[pos:]
                    break
                pos += 2
                self.chunk_state = "size"
            else:  # size line, or trailer lines after the last chunk
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    self.buf = buf[pos:]
                    break
                line = buf[pos:eol]
                pos = eol + 2
                if self.chunk_state == "trailer":
                    if not line:
                        self._flush(out)
                        out = []
                        self._finish(None)
                    continue
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self._flush(out)
                    self._finish(UpstreamError("bad chunk size"))
                    return
                if size == 0:
                    self.chunk_state = "trailer"
                else:
                    self.remaining, self.chunk_state = size, "data"
        self._flush(out)

    def _flush(self, out: list[bytes]) -> None:
        if not out:
            return
        self._deliver(out[0] if len(out) == 1 else b"".join(out))

    def _deliver(self, piece: bytes) -> None:
        if self.sink is not None:
            self.sink.data(piece)

    def _finish(self, error: Exception | None) -> None:
        if self.state != "body":
            return
        self.state = "done"
        sink, self.sink = self.sink, None
        if error is None and self.keep_alive and not self.closed:
            self.pool.release(self)
        else:
            self.close()
        if sink is not None:
            sink.end(error)

    def _fail_head(self, error: Exception) -> None:
        if self.head_fut is not None and not self.head_fut.done():
            self.head_fut.set_exception(error)
        self.close()

    # -- control ----------------------------------------------------------------------------

    def _settle(self) -> None:
        if self.head_fut is not None and not self.head_fut.done():
            self.head_fut.set_exception(UpstreamError("connection closed by the proxy"))

    def close(self) -> None:
        self.closed = True
        self.state = "done"
        self._settle()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        self.state = "done"
        self._settle()
        self.sink = None
        if self.transport is not None:
            self.transport.abort()

    def pause(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def start(self, request: bytes, sink: Sink, no_body: bool) -> asyncio.Future[Head]:
        loop = asyncio.get_running_loop()
        self.head_fut = loop.create_future()
        self.sink = sink
        self.state = "head"
        self.buf = b""
        self.got_bytes = False
        self.no_body = no_body
        assert self.transport is not None
        self.transport.write(request)
        return self.head_fut


class Pool:
    """Keep-alive connections per (scheme, host, port)."""

    def __init__(self, connect_timeout_s: float = 10.0) -> None:
        self.idle: dict[tuple[str, str, int], deque[_Conn]] = {}
        self.connect_timeout_s = connect_timeout_s
        self._ssl: ssl.SSLContext | None = None
        self.open: set[_Conn] = set()

    def forget(self, conn: _Conn) -> None:
        self.open.discard(conn)
        q = self.idle.get(conn.key)
        if q is not None:
            with contextlib.suppress(ValueError):
                q.remove(conn)

    def release(self, conn: _Conn) -> None:
        conn.state = "idle"
        q = self.idle.setdefault(conn.key, deque())
        if len(q) >= MAX_IDLE_PER_ORIGIN:
            conn.close()
            return
        q.append(conn)

    async def acquire(self, key: tuple[str, str, int]) -> tuple[_Conn, bool]:
        """A connection and whether it was reused (a reused one may be stale)."""
        q = self.idle.get(key)
        while q:
            conn = q.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn, True
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        ctx = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            ctx = self._ssl
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Conn(self, key),
                    host,
                    port,
                    ssl=ctx,
                    server_hostname=host if ctx else None,
                ),
                self.connect_timeout_s,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise UpstreamError(f"cannot connect to {scheme}://{host}:{port}: {exc}") from None
        conn = proto  # type: ignore[assignment]
        sock = conn.transport.get_extra_info("socket") if conn.transport else None
        if sock is not None:
            import socket

            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.open.add(conn)
        return conn, False

    def close(self) -> None:
        for conn in list(self.open):
            conn.close()
        self.open.clear()
        self.idle.clear()


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def parse(cls, url: str) -> Origin:
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"expected an http(s) URL, got {url!r}")
        port = u.port or (443 if u.scheme == "https" else 80)
        # Clients send full API paths (/v1/...): the base's own /v1 is not repeated.
        return cls(u.scheme, u.hostname, port, split_base(url)[1])

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def build_request(
    method: str, origin: Origin, raw_path: str, headers: Iterable[tuple[str, str]], body: bytes
) -> bytes:
    lines = [f"{method} {origin.base_path}{raw_path} HTTP/1.1", f"Host: {origin.host_header}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def send(
    pool: Pool,
    origin: Origin,
    method: str,
    raw_path: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    sink_factory: Callable[[], Sink],
) -> tuple[_Conn, Head, Sink]:
    """Send one request; returns once the response head is in (the body flows to the sink).

    A reused keep-alive connection the upstream closed meanwhile is retried once on a new
    one, as long as it had not answered anything.
    """
    request = build_request(method, origin, raw_path, list(headers), body)
    for attempt in range(2):
        conn, reused = await pool.acquire(origin.key)
        sink = sink_factory()
        fut = conn.start(request, sink, no_body=method == "HEAD")
        try:
            head = await fut
        except UpstreamError:
            if reused and not conn.got_bytes and attempt == 0:
                continue
            raise
        except BaseException:
            conn.abort()
            raise
        return conn, head, sink
    raise UpstreamError("unreachable")
