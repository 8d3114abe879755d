"""The copilot route (`POST /api/ask`) in its three framings, and the front door of every
streaming route: an HTTP/1.0 keep-alive stream is closed after its answer.

One mock per module (a subprocess on loopback).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from loadkit.serving.launch import ServerProcess
from loadkit.tokens import estimate_tokens
from tests.conftest import FAST_MOCK, _start, http_request

CONFIG = {**FAST_MOCK, "retrieval_ms_per_request": 20.0}  # x 0.05: 1 ms per request in flight


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = _start(tmp_path_factory.mktemp("mock-copilot"), CONFIG)
    try:
        yield server
    finally:
        server.stop()


def _addr(mock: ServerProcess) -> tuple[str, int]:
    parts = urlsplit(mock.url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def ask(mock: ServerProcess, **body: object) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(*_addr(mock), timeout=20)
    conn.request(
        "POST", "/api/ask", body=json.dumps(body), headers={"Content-Type": "application/json"}
    )
    return conn.getresponse()


def test_text_framing_is_chunked_and_written_as_decoded(mock: ServerProcess) -> None:
    t0 = time.perf_counter()
    resp = ask(mock, question="Where is my order?", max_tokens=300, ignore_eos=True, stream="text")
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/plain; charset=utf-8"
    assert resp.getheader("Transfer-Encoding") == "chunked"
    first = resp.read(4)
    t_first = time.perf_counter() - t0
    rest = resp.read()
    t_end = time.perf_counter() - t0
    text = (first + rest).decode()
    assert estimate_tokens(text) == 300 and len(text.split()) == 300
    assert t_end - t_first > 0.05  # 299 more decode steps after the first token arrived
    assert float(resp.getheader("x-mock-retrieval-ms") or "0") >= 2.0


def test_sse_framing_has_its_own_events(mock: ServerProcess) -> None:
    resp = ask(mock, question="Refund policy?", session_id="s-42", max_tokens=7, stream="sse")
    assert resp.getheader("Content-Type", "").startswith("text/event-stream")
    assert resp.getheader("x-session-id") == "s-42"
    events = []
    for frame in resp.read().decode().split("\n\n"):
        if frame:
            name, data = frame.split("\n")
            events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    assert events[0][0] == "sources" and len(events[0][1]["sources"]) == 3
    tokens = [d["text"] for n, d in events if n == "token"]
    assert len(tokens) == 7 == estimate_tokens("".join(tokens))
    name, done = events[-1]
    assert name == "done" and done["finish_reason"] == "length" and done["session_id"] == "s-42"
    assert done["usage"]["completion_tokens"] == 7
    assert done["usage"]["total_tokens"] == done["usage"]["prompt_tokens"] + 7


def test_ndjson_framing_is_one_object_a_line(mock: ServerProcess) -> None:
    resp = ask(mock, question="Shipping cost?", max_tokens=6, stream="ndjson")
    assert resp.getheader("Content-Type") == "application/x-ndjson"
    lines = [json.loads(line) for line in resp.read().decode().splitlines()]
    assert len(lines[0]["sources"]) == 3
    tokens = [obj["text"] for obj in lines[1:-1]]
    assert len(tokens) == 6 == estimate_tokens("".join(tokens))
    assert lines[-1]["done"] is True and lines[-1]["usage"]["completion_tokens"] == 6


def test_json_framing_is_one_answer(mock: ServerProcess) -> None:
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    resp = ask(mock, question="Opening hours?", history=history, max_tokens=4000)
    assert resp.getheader("Content-Type", "").startswith("application/json")
    out = json.loads(resp.read())
    assert out["finish_reason"] == "stop" and out["session_id"] is None
    assert out["usage"]["completion_tokens"] == estimate_tokens(out["answer"]) < 4000
    assert out["usage"]["prompt_tokens"] > 600  # the retrieved passages are in the prompt
    assert len(out["sources"]) == 3


def test_retrieval_slows_with_requests_in_flight(mock: ServerProcess) -> None:
    alone = ask(mock, question="q-alone", max_tokens=1)
    alone.read()
    solo = float(alone.getheader("x-mock-retrieval-ms") or "0")

    def one(i: int) -> float:
        r = ask(mock, question=f"q-{i}", max_tokens=50, ignore_eos=True, stream="text")
        r.read()
        return float(r.getheader("x-mock-retrieval-ms") or "0")

    with ThreadPoolExecutor(12) as pool:
        loaded = list(pool.map(one, range(12)))
    assert max(loaded) > solo + 2.0  # at least a few more requests were in flight


BAD = [
    b"",
    b"{",
    b"[]",
    b"\xff",
    b"[" * 50_000,
    b'{"question": ""}',
    b'{"question": 5}',
    b'{"question": "q", "stream": "xml"}',
    b'{"question": "q", "max_tokens": 0}',
    b'{"question": "q", "max_tokens": "5"}',
    b'{"question": "q", "session_id": 7}',
    b'{"question": "q", "history": "x"}',
    b'{"question": "q", "history": [{"role": "system", "content": "x"}]}',
    b'{"question": "q", "max_tokens": 1000000000}',
]


def test_bad_bodies_get_a_400_json_error(mock: ServerProcess) -> None:
    for body in BAD:
        resp = http_request("POST", f"{mock.url}/api/ask", content=body)
        assert resp.status_code == 400, (body[:30], resp.text)
        err = resp.json()["error"]
        assert err["code"] == "bad_request" and err["message"]


def _http10_keepalive(mock: ServerProcess, path: str, body: dict[str, object]) -> float:
    """Seconds from the end of the answer to the server's close (an HTTP/1.0 stream is
    close-delimited: the client knows it ended only when the connection closes)."""
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n"
        "Content-Type: application/json\r\nanthropic-version: 2023-06-01\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection(_addr(mock), timeout=10) as s:
        s.sendall(head + data)
        got = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    assert got.startswith(b"HTTP/1.0 200"), got[:200]
    assert b"transfer-encoding" not in got.split(b"\r\n\r\n")[0].lower()
    return len(got)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/ask", {"question": "q", "max_tokens": 5, "stream": "text"}),
        ("/api/ask", {"question": "q", "max_tokens": 5, "stream": "sse"}),
        ("/api/ask", {"question": "q", "max_tokens": 5, "stream": "ndjson"}),
        (
            "/v1/messages",
            {
                "model": "claude-x",
                "max_tokens": 5,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
        ),
        (
            "/v1/chat/completions",
            {
                "model": "gpt-4o-mini",
                "max_tokens": 5,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            },
        ),
        (
            "/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
            {"max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        ),
    ],
)
def test_http10_keepalive_stream_is_closed_after_the_answer(
    mock: ServerProcess, path: str, body: dict[str, object]
) -> None:
    t0 = time.perf_counter()
    assert _http10_keepalive(mock, path, body) > 0
    # the mock's idle timeout is 75 s: a connection left open would take that long to close
    assert time.perf_counter() - t0 < 5.0
