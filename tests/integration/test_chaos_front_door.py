"""The chaos proxy's front door against clients that do not finish speaking HTTP/1.x: a
slowloris trickle of headers is closed with a 408 like the mock's (not kept for the whole
keep-alive time), an HTTP/0.9 request line gets an answer (not silence)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from loadkit.chaos.proxy import HEADER_TIMEOUT_S
from tests.chaos_support import mock_and_proxy


@pytest.fixture(scope="module")
def proxy_addr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    with mock_and_proxy(tmp_path_factory.mktemp("front")) as (_mock, proxy):
        u = urlsplit(proxy.url)
        yield u.hostname or "127.0.0.1", int(u.port or 80)


def _read_all(sock: socket.socket, limit_s: float) -> bytes:
    sock.settimeout(limit_s)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        pass
    return data


def test_slowloris_clients_get_a_408_and_are_closed(proxy_addr: tuple[str, int]) -> None:
    socks = []
    for _ in range(20):
        s = socket.create_connection(proxy_addr, timeout=5)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # never finishes
        socks.append(s)
    t0 = time.monotonic()
    answers = [_read_all(s, HEADER_TIMEOUT_S + 5) for s in socks]
    waited = time.monotonic() - t0
    for s in socks:
        s.close()
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers[0][:200]
    assert all(b'"type": "invalid_request_error"' in a for a in answers)
    # closed at the header timeout, not at aiohttp's keep-alive time (75 s)
    assert waited < HEADER_TIMEOUT_S + 5


def test_an_http_0_9_request_gets_an_answer(proxy_addr: tuple[str, int]) -> None:
    with socket.create_connection(proxy_addr, timeout=5) as s:
        s.sendall(b"GET /v1/models\r\n")
        answer = _read_all(s, 5)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
