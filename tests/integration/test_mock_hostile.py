"""Hostile clients against the real mock (a subprocess on loopback), over raw sockets.

Every case gets a 4xx (OpenAI-shaped where a response can still be written) or a timely
close, and the mock answers `/health` afterwards. The timeouts are configured short, so the
slow cases take about a second each.
"""

from __future__ import annotations

import gzip
import json
import select
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from loadkit.serving.launch import ServerProcess
from tests.conftest import FAST_MOCK, _start, http_request

CHAT = "/v1/chat/completions"
EMB = "/v1/embeddings"
MSGS = [{"role": "user", "content": "hi"}]
TOKEN = "hostile-admin-token-1234"
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
TIMEOUTS = {"header_s": HEADER_TIMEOUT_S, "body_s": BODY_TIMEOUT_S}
LIMIT = 4_000_000  # the default profile's max_body_bytes


@dataclass
class Reply:
    status: int | None  # None: the connection closed (or stayed silent) without a response
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    closed: bool = False  # the server closed the connection
    elapsed: float = 0.0

    def error(self) -> dict[str, object]:
        """The OpenAI error object of this reply (asserts the shape)."""
        assert self.headers.get("content-type", "").startswith("application/json"), self
        obj = json.loads(self.body)
        assert set(obj) == {"error"}, obj
        err = obj["error"]
        assert set(err) == {"message", "type", "param", "code"}, err
        assert isinstance(err["message"], str) and err["message"]
        return err


def _addr(server: ServerProcess) -> tuple[str, int]:
    parts = urlsplit(server.url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def _parse(data: bytes) -> tuple[int, dict[str, str], bytes] | None:
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def _complete(data: bytes) -> bool:
    parsed = _parse(data)
    if parsed is None:
        return False
    _, headers, rest = parsed
    if "content-length" in headers:
        return len(rest) >= int(headers["content-length"])
    if headers.get("transfer-encoding") == "chunked":
        return rest.endswith(b"0\r\n\r\n")
    return False  # close-delimited: read to EOF


def _closing(data: bytes) -> bool:
    """The response says `Connection: close`: read on, to see the close happen."""
    parsed = _parse(data)
    return parsed is not None and parsed[1].get("connection", "").lower() == "close"


def exchange(
    server: ServerProcess,
    data: bytes,
    *,
    drip: float = 0.0,
    timeout: float = 10.0,
) -> Reply:
    """Send `data` (one byte per `drip` seconds if set), read one response or until close."""
    t0 = time.monotonic()
    sock = socket.create_connection(_addr(server), timeout=timeout)
    got = b""
    closed = False
    try:
        sent = 0
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if sent < len(data):
                step = 1 if drip else len(data) - sent
                try:
                    sent += sock.send(data[sent : sent + step])
                except (BrokenPipeError, ConnectionResetError):
                    sent = len(data)  # the server stopped listening: read what it said
            wait = drip if drip and sent < len(data) else 0.05
            readable, _, _ = select.select([sock], [], [], wait)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    closed = True
                    break
                got += chunk
                if _complete(got) and not _closing(got):
                    break  # a whole response on a connection the server keeps
            elif sent >= len(data) and drip == 0.0 and time.monotonic() - t0 > timeout:
                break
    finally:
        sock.close()
    parsed = _parse(got)
    elapsed = time.monotonic() - t0
    if parsed is None:
        return Reply(None, closed=closed, elapsed=elapsed)
    status, headers, body = parsed
    return Reply(status, headers, body, closed, elapsed)


def request(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    version: str = "1.1",
) -> bytes:
    hdrs = {"Host": "mock", "Content-Type": "application/json", **(headers or {})}
    if body and "Transfer-Encoding" not in hdrs:
        hdrs.setdefault("Content-Length", str(len(body)))
    lines = [f"{method} {path} HTTP/{version}", *(f"{k}: {v}" for k, v in hdrs.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chat_body(**extra: object) -> bytes:
    return json.dumps({"model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 3, **extra}).encode()


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes gzip-compressed, built in slices (about size/1000 bytes)."""
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    out = [co.compress(block) for _ in range(size >> 20)]
    return b"".join(out) + co.flush()


ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Case:
    name: str
    data: bytes
    status: tuple[int, ...]  # acceptable statuses
    openai_shaped: bool = True
    drip: float = 0.0
    check: Callable[[Reply], None] | None = None


def _expect_close_within(limit: float) -> Callable[[Reply], None]:
    def check(reply: Reply) -> None:
        assert reply.closed, "the mock kept the connection open"
        assert reply.elapsed < limit, f"closed only after {reply.elapsed:.1f} s"

    return check


def _http10_stream(reply: Reply) -> None:
    assert reply.closed  # close-delimited
    assert "chunked" not in reply.headers.get("transfer-encoding", "")
    assert reply.body.startswith(b"data: {")
    assert reply.body.endswith(b"data: [DONE]\n\n")


def _code(code: str | None, type_: str = "invalid_request_error") -> Callable[[Reply], None]:
    def check(reply: Reply) -> None:
        err = reply.error()
        assert err["code"] == code and err["type"] == type_, err

    return check


def _cases() -> list[Case]:
    deep = b"[" * 100_000
    deep_obj = b'{"a":' * 50_000
    nested_msgs = b'{"model": "gpt-4o-mini", "messages": ' + b"[" * 100_000
    many = json.dumps({"model": "text-embedding-3-small", "input": ["x"] * 2049}).encode()
    heavy = json.dumps(
        {"model": "text-embedding-3-small", "input": ["word " * 160] * 2048}
    ).encode()  # 2,048 inputs of 200 tokens: 409,600 tokens
    gz = {"Content-Encoding": "gzip"}
    slow = HEADER_TIMEOUT_S + 3.0
    return [
        Case("deep-array-chat", request("POST", CHAT, deep), (400,)),
        Case("deep-object-chat", request("POST", CHAT, deep_obj), (400,)),
        Case("deep-inside-messages", request("POST", CHAT, nested_msgs), (400,)),
        Case("deep-array-completions", request("POST", "/v1/completions", deep), (400,)),
        Case("deep-array-embeddings", request("POST", EMB, deep), (400,)),
        Case("deep-array-admin", request("PATCH", "/admin/config", deep, ADMIN), (400,)),
        Case("deep-object-admin", request("PATCH", "/admin/config", deep_obj, ADMIN), (400,)),
        Case(
            "huge-int-literal",
            request("POST", CHAT, b'{"max_tokens": ' + b"9" * 10_000 + b"}"),
            (400,),
        ),
        Case("invalid-utf8", request("POST", CHAT, b'{"model": "\xff\xfe"}'), (400,)),
        Case("garbage-gzip", request("POST", CHAT, b"this is not gzip at all", gz), (400,)),
        Case(
            "garbage-deflate",
            request("POST", CHAT, b"\x78\x9cnot deflate", {"Content-Encoding": "deflate"}),
            (400,),
        ),
        Case(
            "garbage-br",
            request("POST", CHAT, b"\xff\xff\xffnot brotli", {"Content-Encoding": "br"}),
            (400, 415),
        ),
        Case("truncated-gzip", request("POST", CHAT, gzip.compress(chat_body())[:-12], gz), (400,)),
        Case("gzip-bomb", request("POST", CHAT, gzip_bomb(64 << 20), gz), (413,)),
        Case(
            "gzip-bomb-admin",
            request("PATCH", "/admin/config", gzip_bomb(16 << 20), {**gz, **ADMIN}),
            (413,),
        ),
        Case(
            "unknown-encoding",
            request("POST", CHAT, chat_body(), {"Content-Encoding": "lzma"}),
            (400, 415),
        ),
        Case(
            "chunked-over-limit",
            request(
                "POST",
                CHAT,
                b"".join(b"%x\r\n%s\r\n" % (1 << 20, b"a" * (1 << 20)) for _ in range(5))
                + b"0\r\n\r\n",
                {"Transfer-Encoding": "chunked"},
            ),
            (413,),
        ),
        Case(
            "bad-chunk-size",
            request("POST", CHAT, b"zz\r\nabc\r\n0\r\n\r\n", {"Transfer-Encoding": "chunked"}),
            (400,),
        ),
        Case(
            "http10-stream",
            request("POST", CHAT, chat_body(stream=True), version="1.0"),
            (200,),
            openai_shaped=False,
            check=_http10_stream,
        ),
        Case("embeddings-2049-inputs", request("POST", EMB, many), (400,), check=_code(None)),
        Case(
            "embeddings-too-many-tokens",
            request("POST", EMB, heavy),
            (400,),
            check=_code("max_tokens_per_request", "max_tokens_per_request"),
        ),
        Case("bad-request-line", b"GARBAGE\r\n\r\n", (400,)),
        Case(
            "binary-request-line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", (400,)
        ),
        Case("bad-http-version", b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", (400, 505)),
        Case(
            "request-line-too-long",
            f"GET /{'a' * 20_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
            (400, 414),
        ),
        Case(
            "header-too-long",
            request("GET", "/health", headers={"X-Big": "a" * 100_000}),
            (400, 431),
        ),
        Case(
            "too-many-headers",
            request("GET", "/health", headers={f"X-H{i}": "v" for i in range(300)}),
            (400, 431),
        ),
        Case("header-without-colon", b"GET /health HTTP/1.1\r\nHost x\r\n\r\n", (400,)),
        Case("nul-in-header", b"GET /health HTTP/1.1\r\nHost: x\x00y\r\n\r\n", (400,)),
        Case(
            "two-content-lengths",
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Content-Length: 3\r\n\r\n{}",
            (400,),
        ),
        Case(
            "negative-content-length",
            request("POST", CHAT, b"{}", {"Content-Length": "-1"}),
            (400,),
        ),
        Case(
            "content-length-over-limit",
            request("POST", CHAT, b"{}", {"Content-Length": str(10 * LIMIT)}),
            (413,),
        ),
        Case(
            "slowloris-headers",
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 400,
            (408,),
            drip=0.1,
            check=_expect_close_within(slow),
        ),
        Case(
            "half-sent-headers",
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n",
            (408,),
            check=_expect_close_within(slow),
        ),
        Case(
            "half-sent-body",
            request("POST", CHAT, b'{"model":', {"Content-Length": "1000"}),
            (408,),
            check=_expect_close_within(BODY_TIMEOUT_S + 3.0),
        ),
        Case(
            "half-sent-admin-body",
            request("PATCH", "/admin/config", b"{", {**ADMIN, "Content-Length": "100"}),
            (408,),
            check=_expect_close_within(BODY_TIMEOUT_S + 3.0),
        ),
        Case(
            "slowloris-body",
            request("POST", CHAT, b"", {"Content-Length": "400"}) + b" " * 400,
            (408,),
            drip=0.1,
            check=_expect_close_within(BODY_TIMEOUT_S + 3.0),
        ),
        Case("admin-without-token", request("GET", "/admin/config"), (401, 403)),
        Case(
            "admin-wrong-token",
            request(
                "PATCH", "/admin/config", b'{"latency_scale": 9}', {"Authorization": "Bearer x"}
            ),
            (401, 403),
        ),
        Case("admin-reset-without-token", request("POST", "/admin/reset"), (401, 403)),
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def hostile_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One mock with short timeouts and an admin token for the whole corpus."""
    config = {**FAST_MOCK, "timeouts": TIMEOUTS}
    server = _start(tmp_path_factory.mktemp("hostile"), config, "--admin-token", TOKEN)
    try:
        yield server
    finally:
        server.stop()


def healthy(server: ServerProcess) -> bool:
    return (
        server.process.poll() is None
        and http_request("GET", server.url + "/health", timeout=5.0).status_code == 200
    )


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input(hostile_mock: ServerProcess, case: Case) -> None:
    reply = exchange(hostile_mock, case.data, drip=case.drip, timeout=HEADER_TIMEOUT_S + 8.0)
    assert reply.status in case.status, (reply.status, reply.body[:300])
    if case.openai_shaped and reply.status is not None and reply.status >= 400:
        reply.error()
    if case.check is not None:
        case.check(reply)
    assert healthy(hostile_mock)


def test_admin_token_lets_the_holder_in(hostile_mock: ServerProcess) -> None:
    url = hostile_mock.url + "/admin/config"
    assert http_request("GET", url, headers=ADMIN).status_code == 200
    alt = http_request("GET", url, headers={"x-loadkit-mock-token": TOKEN})
    assert alt.status_code == 200 and "regions" in alt.json()
    assert http_request("GET", url).status_code == 403
    # the token guards /admin only: the API itself stays as the profile says
    assert http_request("GET", hostile_mock.url + "/v1/models").status_code == 200


def test_silent_connections_are_closed(hostile_mock: ServerProcess) -> None:
    """Connections that never send a byte are closed after the header timeout."""
    socks = [socket.create_connection(_addr(hostile_mock)) for _ in range(50)]
    try:
        deadline = time.monotonic() + HEADER_TIMEOUT_S + 4.0
        pending = list(socks)
        while pending and time.monotonic() < deadline:
            readable, _, _ = select.select(pending, [], [], 0.2)
            for s in readable:
                s.recv(65536)  # an optional 408, then EOF
                pending.remove(s)
        assert not pending, f"{len(pending)} silent connections still open"
    finally:
        for s in socks:
            s.close()
    assert healthy(hostile_mock)


def test_keepalive_connection_gets_its_request_answered(hostile_mock: ServerProcess) -> None:
    """The header timeout does not cut a keep-alive connection between quick requests."""
    sock = socket.create_connection(_addr(hostile_mock), timeout=5.0)
    try:
        for _ in range(3):
            sock.sendall(request("GET", "/health"))
            data = b""
            while not _complete(data):
                chunk = sock.recv(65536)
                assert chunk
                data += chunk
            assert data.startswith(b"HTTP/1.1 200")
            time.sleep(HEADER_TIMEOUT_S * 0.6)
    finally:
        sock.close()


# ------------------------------------------------------------------ storm


def test_largest_valid_embeddings_request_is_answered_whole(hostile_mock: ServerProcess) -> None:
    """2,048 inputs (the cap) leave as a streamed body equal to the one-shot answer."""
    inputs = [f"input number {i}" for i in range(2048)]
    body = {"model": "text-embedding-3-small", "input": inputs, "dimensions": 64}
    resp = http_request("POST", hostile_mock.url + EMB, json_body=body, timeout=30.0)
    assert resp.status_code == 200
    data = resp.json()
    assert [d["index"] for d in data["data"]] == list(range(2048))
    assert data["usage"]["prompt_tokens"] == sum(-(-len(t) // 4) for t in inputs)
    one = http_request(
        "POST", hostile_mock.url + EMB, json_body={**body, "input": inputs[1234]}
    ).json()
    assert data["data"][1234]["embedding"] == one["data"][0]["embedding"]


def test_admin_token_from_the_environment_and_timeouts_from_flags(tmp_path: Path) -> None:
    """LOADKIT_MOCK_ADMIN_TOKEN works like --admin-token; --header-timeout beats the file."""
    from loadkit.serving.launch import start_server

    server = start_server(
        "mock",
        ["mocks", "--port", "0", "--header-timeout", "0.5", "--idle-timeout", "60"],
        env={"LOADKIT_MOCK_ADMIN_TOKEN": TOKEN},
    )
    try:
        url = server.url + "/admin/config"
        assert http_request("GET", url).status_code == 403
        assert http_request("GET", url, headers=ADMIN).status_code == 200
        silent = socket.create_connection(_addr(server))
        try:
            t0 = time.monotonic()
            silent.settimeout(5.0)
            while silent.recv(65536):
                pass
            assert time.monotonic() - t0 < 3.0
        finally:
            silent.close()
    finally:
        server.stop()
