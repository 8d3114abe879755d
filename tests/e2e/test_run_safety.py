"""`loadkit run` money and safety: budget stop, API keys, unreachable/remote targets, SLOs."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from loadkit.results.reader import read_records
from tests.run_helpers import run_cli, scenario, summary


def _one_line_error(proc) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_request_budget_stops_the_run_cleanly(tmp_path) -> None:
    path = scenario(
        tmp_path,
        "budget",
        load={"type": "open", "process": "constant", "phases": [{"rate": "40/s", "for": "60s"}]},
        budget={"max_requests": 30},
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "request budget reached" in proc.stdout
    rec = read_records(out / "requests.csv")
    assert len(set(rec["request_id"].tolist())) == 30  # exactly the budget, all recorded
    s = summary(out)
    assert "budget" in s["stop_reason"]
    assert s["duration_s"] < 20  # stopped long before the 60 s timeline


def test_cost_budget(tmp_path) -> None:
    path = scenario(
        tmp_path,
        "usd",
        load={"type": "open", "process": "constant", "phases": [{"rate": "40/s", "for": "60s"}]},
        pricing={"model": "gpt-4o-mini"},
        budget={"max_usd": 0.0002},
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cost budget reached" in proc.stdout
    s = summary(out)
    assert s["cost_usd_total"] >= 0.0002
    # in-flight requests finish after the limit: bounded overshoot at 40/s and ~20 ms answers
    assert s["cost_usd_total"] < 0.0002 * 3
    assert s["duration_s"] < 20


def test_missing_api_key_variable(tmp_path) -> None:
    path = scenario(
        tmp_path,
        "key",
        target={
            "base_url": "http://127.0.0.1:9/v1",
            "api_key_env": "LOADKIT_TEST_UNSET_KEY_VAR",
            "model": "gpt-4o-mini",
        },
    )
    proc = run_cli("run", str(path), "--out", str(tmp_path / "run"), env={})
    line = _one_line_error(proc)
    assert "LOADKIT_TEST_UNSET_KEY_VAR" in line and "not set" in line
    assert not (tmp_path / "run").exists()  # nothing started, nothing written


def test_unreachable_target(tmp_path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = scenario(
        tmp_path,
        "dead",
        target={"base_url": f"http://127.0.0.1:{port}/v1", "model": "gpt-4o-mini"},
    )
    proc = run_cli("run", str(path), "--out", str(tmp_path / "run"))
    line = _one_line_error(proc)
    assert f"127.0.0.1:{port}" in line and "cannot reach" in line


def test_remote_target_needs_yes_or_budget(tmp_path) -> None:
    path = scenario(
        tmp_path,
        "remote",
        target={
            "base_url": "https://api.example.invalid/v1",
            "api_key_env": "LOADKIT_TEST_KEY",
            "model": "gpt-4o-mini",
        },
        pricing={"model": "gpt-4o-mini"},
    )
    proc = run_cli(
        "run",
        str(path),
        "--out",
        str(tmp_path / "run"),
        env={"LOADKIT_TEST_KEY": "sk-test-not-a-real-key-123456"},
    )
    line = _one_line_error(proc)
    assert "--yes" in line
    assert "estimated cost" in proc.stdout and "$" in proc.stdout
    assert "sk-test" not in proc.stdout + proc.stderr


def test_fail_on_slo(tmp_path) -> None:
    path = scenario(tmp_path, "slo", slo={"ttft": {"p95": "1ms"}, "error_rate": "1%"})
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), "--fail-on-slo")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BREACHED" in proc.stdout and "ttft_ms.p95" in proc.stdout
    s = summary(out)
    assert s["slo"]["breached"] == ["ttft_ms.p95"]
    # without the flag the same breach is reported but the exit code stays 0
    proc2 = run_cli("run", str(path), "--out", str(tmp_path / "run2"))
    assert proc2.returncode == 0 and "BREACHED" in proc2.stdout
    assert np.isfinite(s["ttft_ms"]["p95"])


def test_closed_loop_request_budget(tmp_path) -> None:
    path = scenario(
        tmp_path,
        "closed-budget",
        load={"type": "closed", "phases": [{"kind": "step", "users": 4, "for": "60s"}]},
        budget={"max_requests": 12},
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stopped: request budget reached (12 of 12)" in proc.stdout
    rec = read_records(out / "requests.csv")
    assert len(set(rec["request_id"].tolist())) == 12
    assert summary(out)["duration_s"] < 20


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers every request with the status in the server's `status` attribute."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.command, self.path))  # type: ignore[attr-defined]
        body = json.dumps({"error": {"message": "no such thing", "type": "invalid"}}).encode()
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[http.server.ThreadingHTTPServer]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    srv.seen = []  # type: ignore[attr-defined]
    srv.status = 404  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("status", [404, 401, 403])
def test_a_target_that_refuses_stops_before_any_load(tmp_path, refusing_server, status) -> None:
    refusing_server.status = status
    port = refusing_server.server_address[1]
    path = scenario(
        tmp_path,
        "refused",
        target={"base_url": f"http://127.0.0.1:{port}/v1", "model": "gpt-4o-mini"},
    )
    proc = run_cli("run", str(path), "--out", str(tmp_path / "run"))
    line = _one_line_error(proc)
    assert f"HTTP {status}" in line and f"127.0.0.1:{port}/v1/" in line, line
    # the check itself: GET /v1/models, then (no such route) one 1-token chat completion
    expected = [("GET", "/v1/models")]
    if status == 404:
        expected.append(("POST", "/v1/chat/completions"))
    assert refusing_server.seen == expected
    assert not (tmp_path / "run" / "requests.csv").exists()
