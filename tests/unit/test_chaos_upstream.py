"""The proxy's HTTP/1.1 upstream parser: any split of the bytes gives the same body."""

from __future__ import annotations

import asyncio

import pytest

from loadkit.chaos.upstream import Origin, Pool, Sink, _Conn, build_request


class _Collect(Sink):
    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.ended: list[Exception | None] = []

    def data(self, piece: bytes) -> None:
        self.pieces.append(piece)

    def end(self, error: Exception | None) -> None:
        self.ended.append(error)


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.sent = b""
        self.closing = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.sent += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"6\r\ndata: \r\n"
    b'a;ext=1\r\n{"x": 1}\n\n\r\n'
    b"0\r\nTrailer: yes\r\n\r\n"
)
LENGTH = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
CLOSE = b"HTTP/1.0 200 OK\r\n\r\nuntil the end"


async def _feed(raw: bytes, cut: int, close: bool = False) -> tuple[_Conn, _Collect, object]:
    pool = Pool()
    conn = _Conn(pool, ("http", "h", 80))
    conn.connection_made(_Transport())
    sink = _Collect()
    fut = conn.start(b"GET / HTTP/1.1\r\n\r\n", sink, no_body=False)
    conn.data_received(raw[:cut])
    conn.data_received(raw[cut:])
    if close:
        conn.connection_lost(None)
    return conn, sink, await fut


@pytest.mark.parametrize(
    ("raw", "body", "close"),
    [
        (CHUNKED, b'data: {"x": 1}\n\n', False),
        (LENGTH, b"hello", False),
        (CLOSE, b"until the end", True),
    ],
)
def test_every_split_gives_the_same_body(raw: bytes, body: bytes, close: bool) -> None:
    for cut in range(1, len(raw)):
        conn, sink, head = asyncio.run(_feed(raw, cut, close))
        assert b"".join(sink.pieces) == body, cut
        assert sink.ended == [None], cut
        assert head.status == 200  # type: ignore[attr-defined]
        # keep-alive responses go back to the pool, the HTTP/1.0 one is closed
        assert (conn.state == "idle") is (not close), cut


def test_a_cut_chunked_body_is_an_error() -> None:
    async def run() -> _Collect:
        pool = Pool()
        conn = _Conn(pool, ("http", "h", 80))
        conn.connection_made(_Transport())
        sink = _Collect()
        fut = conn.start(b"x", sink, no_body=False)
        conn.data_received(CHUNKED[:90])
        await fut
        conn.connection_lost(ConnectionResetError())
        return sink

    sink = asyncio.run(run())
    assert len(sink.ended) == 1 and sink.ended[0] is not None


def test_request_building_keeps_the_base_path_and_host() -> None:
    o = Origin.parse("https://api.example.com/openai/")
    assert (o.scheme, o.port, o.base_path, o.host_header) == (
        "https",
        443,
        "/openai",
        "api.example.com",
    )
    req = build_request("POST", o, "/v1/chat?x=1", [("Authorization", "Bearer k")], b"{}")
    assert req.startswith(b"POST /openai/v1/chat?x=1 HTTP/1.1\r\nHost: api.example.com\r\n")
    assert b"Content-Length: 2\r\n\r\n{}" in req
    assert Origin.parse("http://127.0.0.1:8080").host_header == "127.0.0.1:8080"
    with pytest.raises(ValueError):
        Origin.parse("ftp://x")
