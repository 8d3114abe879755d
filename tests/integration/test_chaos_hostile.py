"""Hostile clients against the real chaos proxy (a subprocess, in front of the real mock).

Every hostile request gets a 4xx (or, for a well-formed compressed body, the upstream's 200),
never a 500 or a wait without end; the proxy stays healthy and writes no traceback. Raw
sockets on 127.0.0.1 only; every read has a timeout.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadkit.serving.launch import running_server, wait_healthy
from tests.chaos_support import MOCK
from tests.conftest import http_request

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").exists(), reason="reads the proxy's fds and RSS from /proc"
)

CHAT = "/v1/chat/completions"
JSON = "Content-Type: application/json\r\n"
LIMIT_MB = 2  # the proxy under test takes bodies up to 2 MiB (the default is 16)
TERABYTE = 1 << 40


def chat(max_tokens: int = 3, stream: bool = False, model: str = "gpt-4o-mini") -> bytes:
    return json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens,
            "stream": stream,
        }
    ).encode()


@dataclass
class Stack:
    mock_url: str
    url: str
    proc: subprocess.Popen[bytes]
    stderr: Path
    host: str
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def err_size(self) -> int:
        return self.stderr.stat().st_size

    def err_since(self, offset: int) -> str:
        with self.stderr.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def status(self) -> dict:
        return http_request("GET", self.url + "/chaos/status").json()

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_mb(self) -> float:
        text = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The mock, and the proxy in front of it with its stderr in a file we can read."""
    tmp = tmp_path_factory.mktemp("hostile")
    cfg = tmp / "mock.yaml"
    cfg.write_text(json.dumps({k: v for k, v in MOCK.items() if k != "regions"}))
    err = tmp / "proxy.stderr"
    with running_server("mock", ["mocks", "--port", "0", "--config", str(cfg)]) as mock:
        cmd = [sys.executable, "-m", "loadkit.chaos", "--upstream", mock.url, "--port", "0"]
        cmd += ["--max-body-mb", str(LIMIT_MB)]
        with err.open("wb") as err_file:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file)
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().decode().strip()
            assert url.startswith("http://127.0.0.1:"), url
            wait_healthy(url)
            port = int(url.rsplit(":", 1)[1])
            yield Stack(mock.url, url, proc, err, "127.0.0.1", port)
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    ended: bool  # the proxy closed the connection (or the body's framing ended)


def _read_reply(sock: socket.socket, until_close: bool = False) -> Reply:
    buf = b""
    while b"\r\n\r\n" not in buf:
        piece = sock.recv(65536)
        if not piece:
            raise AssertionError(f"connection closed before a response head: {buf[:200]!r}")
        buf += piece
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = headers.get("content-length")
    chunked = "chunked" in headers.get("transfer-encoding", "")
    ended = False
    while True:
        if not until_close and n is not None and len(body) >= int(n):
            ended = True
            break
        if not until_close and chunked and body.endswith(b"0\r\n\r\n"):
            ended = True
            break
        piece = sock.recv(65536)
        if not piece:
            ended = True
            break
        body += piece
    return Reply(status, headers, body, ended)


def raw(
    stack: Stack,
    head: str,
    body: bytes = b"",
    *,
    timeout: float = 10.0,
    until_close: bool = False,
    body_chunks: Iterator[bytes] | None = None,
) -> Reply:
    """Send `head` (+ body) on a fresh connection and read one reply; a body sent from a
    thread, so a proxy answering before reading it all still gets its answer read."""
    sock = socket.create_connection((stack.host, stack.port), timeout=timeout)
    try:
        sock.sendall(head.encode("latin-1"))

        def send() -> None:
            try:
                if body:
                    sock.sendall(body)
                for chunk in body_chunks or ():
                    sock.sendall(chunk)
            except OSError:
                pass  # the proxy answered and closed before taking it all: that is allowed

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        reply = _read_reply(sock, until_close)
        sender.join(timeout)
        return reply
    finally:
        sock.close()


def post(path: str, body: bytes, extra: str = "", version: str = "1.1") -> tuple[str, bytes]:
    head = f"POST {path} HTTP/{version}\r\nHost: x\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    return head, body


def assert_openai_error(reply: Reply, *words: str) -> None:
    err = json.loads(reply.body)["error"]
    assert set(err) >= {"message", "type", "param", "code"}, err
    for word in words:
        assert word in err["message"], (word, err)


def nested_json(depth: int) -> bytes:
    return b'{"model": "gpt-x", "messages": ' + b"[" * depth + b"]" * depth + b"}"


def yaml_alias_fanout(levels: int = 7) -> bytes:
    """9**levels leaves from a few hundred bytes: a fault value that must not be printed."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        p = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([p] * 9)}]")
    lines.append(
        f"faults: [{{id: f, kind: latency, params: {{fixed_ms: *a{levels - 1}}}, "
        f"where: {{model: *a{levels - 1}}}}}]"
    )
    return "\n".join(lines).encode()


# -- the corpus: (name, request head, body, expected statuses, words the error must name) --

_GOOD = chat()
_HEADER_CASES = [
    ("status=503; rate=abc", "rate"),
    ("status=503; rate=2", "rate"),
    ("status=503; rate=nan", "rate"),
    ("status=abc", "status"),
    ("status=418", "status"),
    ("kind=nope", "kind"),
    ("latency_ms=-5", "fixed_ms"),
    ("latency_ms=1e999", "fixed_ms"),
    ("status=503; first=x", "first"),
    ("junk", "key=value"),
    ("kind=latency", "fixed_ms"),
    ("status=503; foo=1", "foo"),
    ("kind=stall", "stall"),
    ("=", "key"),
]
_ADMIN_TARGETS = [
    "/admin/config",
    "/admin",
    "//admin/config",
    "/./admin/config",
    "/v1/../admin/config",
    "/%61dmin/config",
    "/%2561dmin/config",
    "/ADMIN/config",
    "/admin/config?x=1",
]


@functools.cache
def _corpus(port: int) -> list[tuple[str, str, bytes, set[int], tuple[str, ...]]]:
    cases: list[tuple[str, str, bytes, set[int], tuple[str, ...]]] = []

    def add(name: str, hb: tuple[str, bytes], want: set[int], *words: str) -> None:
        cases.append((name, hb[0], hb[1], want, words))

    # request bodies with a Content-Encoding: the upstream must see a consistent request
    add("gzip-body", post(CHAT, gzip.compress(_GOOD), JSON + "Content-Encoding: gzip\r\n"), {200})
    add("GZIP-body", post(CHAT, gzip.compress(_GOOD), JSON + "Content-Encoding: GZIP\r\n"), {200})
    add(
        "deflate-body",
        post(CHAT, zlib.compress(_GOOD), JSON + "Content-Encoding: deflate\r\n"),
        {200},
    )
    add("bad-gzip", post(CHAT, b"not gzip at all", JSON + "Content-Encoding: gzip\r\n"), {400})
    bomb = gzip.compress(b" " * ((LIMIT_MB + 1) << 20), 1)
    add("gzip-bomb", post(CHAT, bomb, JSON + "Content-Encoding: gzip\r\n"), {413}, "limit")
    # malformed x-loadkit-chaos headers: a 400 naming the field
    for value, word in _HEADER_CASES:
        add(
            f"header[{value}]",
            post(CHAT, _GOOD, JSON + f"x-loadkit-chaos: {value}\r\n"),
            {400},
            word,
        )
    # deep documents on the control API
    deep = b"[" * 100_000
    for path in ("/chaos/load", "/chaos/faults"):
        add(f"deep-json{path}", post(path, deep, JSON), {400}, "JSON")
        add(f"deep-json-in-faults{path}", post(path, b'{"faults": ' + deep, JSON), {400})
        add(f"deep-yaml-flow{path}", post(path, deep, "Content-Type: application/yaml\r\n"), {400})
    block = "".join(f"{'  ' * i}a:\n" for i in range(1200)).encode()
    add("deep-yaml-block", post("/chaos/load", block, "Content-Type: application/yaml\r\n"), {400})
    add(
        "yaml-alias-fanout",
        post("/chaos/load", yaml_alias_fanout(), "Content-Type: application/yaml\r\n"),
        {400},
    )
    mid = json.dumps(
        {"kind": "latency", "where": {"model": [[[["m"]]]]}, "params": {"fixed_ms": 1}}
    )
    add("deep-where-value", post("/chaos/faults", mid.encode(), JSON), {400}, "where")
    head = f"PUT /chaos/faults/x HTTP/1.1\r\nHost: x\r\n{JSON}Content-Length: {len(deep)}\r\n\r\n"
    cases.append(("deep-json-put", head, deep, {400}, ()))
    # sizes: a declared terabyte is refused before any byte; a body past the limit too
    for path in (CHAT, "/chaos/load"):
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\n{JSON}Content-Length: {TERABYTE}\r\n\r\n"
        cases.append((f"terabyte{path}", head, b"", {413}, ("limit",)))
    big = b"x" * ((LIMIT_MB << 20) + 1)
    add("oversized-body", post(CHAT, big, JSON), {413}, "limit")
    # HTTP framing abuse (aiohttp's parser answers; it must be a 4xx)
    both = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
    both += "Transfer-Encoding: chunked\r\n\r\n"
    cases.append(("cl-and-te", both, b"0\r\n\r\n", {400}, ()))
    cases.append(("garbage", "HELLO THERE\r\n\r\n", b"", {400}, ()))
    cases.append(
        (
            "bad-cl",
            f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            b"",
            {400},
            (),
        )
    )
    cases.append(
        (
            "negative-cl",
            f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            b"",
            {400},
            (),
        )
    )
    huge_header = f"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 70_000}\r\n\r\n"
    cases.append(("huge-header", huge_header, b"", {400, 431}, ()))
    # the upstream's admin API is not reachable through the proxy
    for target in _ADMIN_TARGETS:
        cases.append(
            (
                f"admin[{target}]",
                f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n",
                b"",
                {403},
                ("admin",),
            )
        )
    patch = json.dumps({"latency_scale": 40}).encode()
    head = f"PATCH /admin/config HTTP/1.1\r\nHost: x\r\n{JSON}Content-Length: {len(patch)}\r\n\r\n"
    cases.append(("admin-patch", head, patch, {403}, ("admin",)))
    absolute = f"GET http://127.0.0.1:{port}/admin/config HTTP/1.1\r\nHost: x\r\n\r\n"
    cases.append(("admin-absolute-form", absolute, b"", {403}, ("admin",)))
    region = "GET /admin/config HTTP/1.1\r\nHost: x\r\nx-loadkit-region: na\r\n\r\n"
    cases.append(("admin-region-header", region, b"", {403}, ("admin",)))
    return cases


CASE_NAMES = [c[0] for c in _corpus(0)]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_request_gets_a_4xx_and_the_proxy_lives_on(stack: Stack, name: str) -> None:
    case = {c[0]: c for c in _corpus(stack.port)}[name]
    _, head, body, want, words = case
    offset = stack.err_size()
    t0 = time.perf_counter()
    reply = raw(stack, head, body)
    took = time.perf_counter() - t0
    assert reply.status in want, (reply.status, reply.body[:300])
    assert took < 8, took  # no wait on a body that never comes
    if reply.status >= 400 and words:
        assert_openai_error(reply, *words)
    assert http_request("GET", stack.url + "/health", timeout=5).status_code == 200
    assert "Traceback" not in stack.err_since(offset)


def test_admin_patch_through_the_proxy_changes_nothing_upstream(stack: Stack) -> None:
    before = http_request("GET", stack.mock_url + "/admin/config").json()
    r = http_request(
        "PATCH", stack.url + "/admin/config", json_body={"latency_scale": 40}, timeout=5
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_not_forwarded"
    assert http_request("GET", stack.mock_url + "/admin/config").json() == before


def test_a_deep_body_meets_a_model_selecting_fault_with_a_400(stack: Stack) -> None:
    fault = {"id": "by-model", "kind": "http_error", "where": {"model": "gpt-x"}}
    fault["params"] = {"status": 503}
    assert http_request("POST", stack.url + "/chaos/faults", json_body=fault).status_code == 201
    try:
        offset = stack.err_size()
        deep = nested_json(100_000)
        reply = raw(stack, *post(CHAT, deep, JSON))
        assert reply.status == 400, reply.body[:300]
        assert_openai_error(reply, "nested")
        # the fault still works on a readable body
        assert raw(stack, *post(CHAT, chat(model="gpt-x"), JSON)).status == 503
    finally:
        http_request("DELETE", stack.url + "/chaos/faults/by-model")
    # no fault selects by model: a 429's message reads the model, and copes with a deep body
    reply = raw(stack, *post(CHAT, deep, JSON + "x-loadkit-chaos: status=429\r\n"))
    assert reply.status == 429
    assert "Traceback" not in stack.err_since(offset)


def test_a_chunked_body_growing_past_the_limit_is_a_413(stack: Stack) -> None:
    piece = b"x" * (256 << 10)
    chunk = b"%x\r\n%b\r\n" % (len(piece), piece)
    n = (LIMIT_MB << 20) // len(piece) + 4
    head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\n{JSON}Transfer-Encoding: chunked\r\n\r\n"
    reply = raw(stack, head, body_chunks=iter([chunk] * n + [b"0\r\n\r\n"]))
    assert reply.status == 413
    assert_openai_error(reply, "limit")


def test_an_http10_keep_alive_stream_ends(stack: Stack) -> None:
    extra = JSON + "Connection: keep-alive\r\n"
    head, body = post(CHAT, chat(max_tokens=5, stream=True), extra, version="1.0")
    t0 = time.perf_counter()
    reply = raw(stack, head, body, timeout=10, until_close=True)
    assert reply.ended and time.perf_counter() - t0 < 8
    assert reply.status == 200 and "chunked" not in reply.headers.get("transfer-encoding", "")
    assert reply.body.startswith(b"data: ") and reply.body.rstrip().endswith(b"data: [DONE]")
    # a plain answer to HTTP/1.0 keep-alive is length-delimited
    reply = raw(stack, *post(CHAT, chat(), extra, version="1.0"))
    assert reply.status == 200 and reply.ended and json.loads(reply.body)["usage"]


def _wait(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def _rst(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def test_abandoned_latency_requests_are_cancelled(stack: Stack) -> None:
    head, body = post(CHAT, chat(), JSON + "x-loadkit-chaos: latency_ms=3600000\r\n")
    fds0, rss0 = stack.fds(), stack.rss_mb()
    socks = []
    for _ in range(200):
        s = socket.create_connection((stack.host, stack.port), timeout=5)
        s.sendall(head.encode() + body)
        socks.append(s)
    assert _wait(lambda: stack.status()["in_flight"] >= 200), stack.status()
    held = stack.fds()
    for s in socks:
        s.close()
    assert _wait(lambda: stack.status()["in_flight"] == 0, 5), stack.status()
    assert _wait(lambda: stack.fds() <= fds0 + 3, 5), (fds0, held, stack.fds())
    print(
        f"\n200 abandoned delays: fds {fds0} -> {held} held -> {stack.fds()}; "
        f"RSS {rss0:.1f} -> {stack.rss_mb():.1f} MB"
    )


def test_clients_leaving_mid_body_leave_no_traceback(stack: Stack) -> None:
    offset = stack.err_size()
    body = chat()
    head = f"POST {CHAT} HTTP/1.1\r\nHost: x\r\n{JSON}Content-Length: {len(body) + 100}\r\n\r\n"
    for i in range(100):
        s = socket.create_connection((stack.host, stack.port), timeout=5)
        s.sendall(head.encode() + body[: len(body) // 2])
        time.sleep(0.002)
        _rst(s) if i % 2 else s.close()
    for path in ("/chaos/load", "/chaos/faults"):  # the control API too
        s = socket.create_connection((stack.host, stack.port), timeout=5)
        s.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\n{JSON}Content-Length: 100\r\n\r\n{{".encode()
        )
        time.sleep(0.05)
        s.close()
    assert _wait(lambda: stack.status()["in_flight"] == 0, 5), stack.status()
    assert http_request("GET", stack.url + "/health").status_code == 200
    time.sleep(0.3)
    err = stack.err_since(offset)
    assert "Traceback" not in err and "uvloop" not in err, err[-2000:]


def _mock_running(mock_url: str) -> float:
    text = http_request("GET", mock_url + "/metrics").text
    found = re.findall(r"^vllm:num_requests_running\{[^}]*\} (\S+)", text, re.M)
    return sum(float(v) for v in found)


def test_a_storm_of_1000_dropped_streams(stack: Stack) -> None:
    """1,000 streams through the proxy, each dropped after its first bytes (half with a
    reset), and among them 200 clients leaving mid-body; then the proxy still serves, its
    fds, tasks and upstream slots are back, and it wrote no traceback."""
    head, body = post(CHAT, chat(max_tokens=2000, stream=True), JSON)
    request = head.encode() + body
    cut = request[: len(head) + len(body) // 2]
    http_request("POST", stack.url + CHAT, json_body=json.loads(chat()))  # warm the pool
    assert _wait(lambda: stack.status()["in_flight"] == 0)
    offset = stack.err_size()
    fds0, rss0 = stack.fds(), stack.rss_mb()
    t0 = time.perf_counter()
    dropped = 0
    for batch in range(10):
        socks = []
        for _ in range(100):
            s = socket.create_connection((stack.host, stack.port), timeout=10)
            s.sendall(request)
            socks.append(s)
        for i in range(20):
            s = socket.create_connection((stack.host, stack.port), timeout=10)
            s.sendall(cut)
            _rst(s) if i % 2 else s.close()
        for i, s in enumerate(socks):
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            _rst(s) if (i + batch) % 2 else s.close()
            dropped += 1
    storm_s = time.perf_counter() - t0
    peak_rss = stack.rss_mb()
    assert dropped == 1000 and storm_s < 60, storm_s
    assert _wait(lambda: stack.status()["active_streams"] == 0, 10), stack.status()
    assert _wait(lambda: stack.status()["in_flight"] == 0, 5), stack.status()
    assert _wait(lambda: _mock_running(stack.mock_url) == 0, 10)  # upstream requests aborted
    assert _wait(lambda: stack.fds() <= fds0 + 3, 10), (fds0, stack.fds())
    assert stack.rss_mb() < rss0 + 64, (rss0, stack.rss_mb())
    r = http_request("POST", stack.url + CHAT, json_body=json.loads(chat()), timeout=10)
    assert r.status_code == 200 and r.json()["usage"]
    err = stack.err_since(offset)
    assert "Traceback" not in err, err[-2000:]
    print(
        f"\nstorm: 1000 dropped streams + 200 mid-body in {storm_s:.1f}s; "
        f"fds {fds0} -> {stack.fds()}; "
        f"RSS {rss0:.1f} -> {peak_rss:.1f} (right after) -> {stack.rss_mb():.1f} MB"
    )


def test_the_event_loop_does_not_run_inside_an_except_block() -> None:
    """Else every traceback the proxy logs is led by a chained `No module named 'uvloop'`."""
    from loadkit.chaos import cli

    async def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError) as info:
        cli._run(boom())
    assert info.value.__context__ is None
