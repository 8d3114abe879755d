"""The proxy survives client disconnects and upstream failures, and leaks no connections."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import openai
import pytest

from loadkit.chaos.control_client import running_proxy
from tests.chaos_support import mock_and_proxy
from tests.conftest import http_request

BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
    b'"stream":true,"max_tokens":2000}'
)


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _running(mock_url: str) -> float:
    text = http_request("GET", mock_url + "/metrics").text
    found = re.findall(r"^vllm:num_requests_running\{[^}]*\} (\S+)", text, re.M)
    assert found, "the mock's running gauge is missing"
    return sum(float(v) for v in found)


def _open_and_leave(url: str, header: str = "") -> None:
    """Start a long stream, read its first bytes, then vanish."""
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)))
    extra = f"x-loadkit-chaos: {header}\r\n" if header else ""
    s.sendall(
        (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"{extra}Content-Length: {len(BODY)}\r\n\r\n"
        ).encode()
        + BODY
    )
    s.settimeout(5)
    assert s.recv(4096)
    s.close()


def _wait(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc to count fds")
def test_client_disconnects_free_everything_upstream(tmp_path: Path) -> None:
    with mock_and_proxy(tmp_path) as (mock, proxy):
        pid = proxy.server.process.pid
        _open_and_leave(proxy.url)  # warm up
        assert _wait(lambda: proxy.control.status()["active_streams"] == 0)
        before = _fds(pid)
        for i in range(40):
            header = ["", "kind=slow_tokens;factor=2", "stall_after_tokens=2", "kind=drop_usage"][
                i % 4
            ]
            _open_and_leave(proxy.url, header)
        assert _wait(lambda: proxy.control.status()["active_streams"] == 0)
        assert _wait(lambda: _running(mock.url) == 0)  # the mock freed every slot
        assert _wait(lambda: _fds(pid) <= before + 2), (before, _fds(pid))
        # and it still serves
        c = openai.OpenAI(base_url=proxy.url + "/v1", api_key="x", max_retries=0)
        assert c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}], max_tokens=3
        ).usage


def test_an_unreachable_upstream_is_a_502_and_the_proxy_lives_on(tmp_path: Path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()
    with running_proxy(dead) as proxy:
        for _ in range(3):
            r = http_request("POST", proxy.url + "/v1/chat/completions", json_body={"model": "m"})
            assert r.status_code == 502 and r.json()["error"]["type"] == "proxy_error"
        assert proxy.control.status()["upstream_errors"] == 3
        assert http_request("GET", proxy.url + "/health").status_code == 200


def test_an_upstream_dying_mid_stream_breaks_the_clients_stream_too(tmp_path: Path) -> None:
    with mock_and_proxy(tmp_path) as (mock, proxy):
        c = openai.OpenAI(base_url=proxy.region_urls["na"] + "/v1", api_key="x", max_retries=0)
        got = 0
        with pytest.raises(openai.APIConnectionError):
            for _chunk in c.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "a"}],
                max_tokens=500,
                stream=True,
            ):
                got += 1
                if got == 3:  # the provider's region goes down under the stream
                    r = http_request(
                        "PATCH",
                        mock.url + "/admin/config",
                        json_body={"regions": {"na": {"down": "refuse"}}},
                    )
                    assert r.status_code == 200
        assert 3 <= got < 500
        r = http_request(
            "POST",
            proxy.region_urls["na"] + "/v1/chat/completions",
            json_body={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a"}]},
        )
        assert r.status_code == 502
        assert _wait(lambda: proxy.control.status()["active_streams"] == 0)
        http_request("POST", mock.url + "/admin/reset", json_body={})
        assert c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}], max_tokens=3
        ).usage
