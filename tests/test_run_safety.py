"""`loadkit run` money and safety: budget stop, API keys, unreachable/remote targets, SLOs."""

from __future__ import annotations

import socket

import numpy as np

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
