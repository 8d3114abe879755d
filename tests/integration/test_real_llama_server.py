"""loadkit against llama.cpp's own `llama-server`, software nobody here wrote.

The server (../shared/real-target) closes the connection after every streamed answer
although its headers promise keep-alive, answers any model name with its own, and reports
usage: the cases where loadkit's verdict went wrong on a real server. Skips with the
reason when the server is not built (`bash ../shared/real-target/up.sh`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadkit.results.reader import read_records
from tests.real_target import MODEL_NAME
from tests.run_helpers import run_cli, scenario, summary

CHAT = {
    "name": "chat",
    "kind": "chat",
    "prompt_tokens": 100,
    "output_tokens": 24,
    "max_tokens": 24,
    "stream": True,
}
CLOSED_3 = {
    "type": "closed",
    "spawn_rate": "3/s",
    "phases": [{"kind": "hold", "users": 3, "for": "12s"}],
}


def test_a_healthy_closed_loop_run_has_no_false_failures_and_says_go(
    tmp_path: Path, llama_server: str
) -> None:
    path = scenario(
        tmp_path,
        "llama",
        target={"base_url": llama_server, "model": MODEL_NAME},
        workloads=[CHAT],
        load=CLOSED_3,
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = read_records(out / "requests.csv")
    outcome = rec["outcome"].astype(str)
    assert rec.n >= 20
    assert not (outcome == "connect_error").any(), rec["error"][outcome != "ok"]
    assert (outcome == "ok").all()
    assert (rec["attempt"] == 0).all()  # no retries: a stale connection is not an attempt
    assert set(rec["response_model"].astype(str)) == {MODEL_NAME}
    assert (rec["tokens_source"].astype(str) == "server").all()
    s = summary(out)
    assert s["verdict"]["overall"] == "go" and s["error_rate"] == 0.0
    assert s["reconnects"] == int(np.sum(rec["reconnects"]))
    assert "readiness: GO" in proc.stdout
    assert "model_mismatch" not in s
    assert s["cost"]["per_ok_request_usd"] is None  # no price for a self-hosted model


def test_another_model_name_is_warned_about_and_recorded(tmp_path: Path, llama_server: str) -> None:
    path = scenario(
        tmp_path,
        "asked-gpt",
        target={"base_url": llama_server, "model": "gpt-4o-mini"},
        workloads=[CHAT],
        load={"type": "open", "process": "constant", "phases": [{"rate": "3/s", "for": "3s"}]},
        pricing={"model": "gpt-4o-mini"},
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warning = (
        f"warning: the scenario asks for model gpt-4o-mini but the service answered as "
        f"{MODEL_NAME} in"
    )
    assert warning in proc.stdout
    s = summary(out)
    assert s["model_mismatch"][0]["answered"] == MODEL_NAME
    html = (out / "report.html").read_text()
    assert f"answered as {MODEL_NAME}" in html


def test_a_drill_with_a_v1_base_url_reaches_the_server_outside_its_window(
    tmp_path: Path, llama_server: str
) -> None:
    assert llama_server.endswith("/v1")
    path = scenario(
        tmp_path,
        "llama-drill",
        target={"base_url": llama_server, "model": MODEL_NAME},
        workloads=[CHAT],
        client={"retries": {"max": 0}},
        load={"type": "open", "process": "constant", "phases": [{"rate": "4/s", "for": "8s"}]},
        faults=[{"id": "e500", "at": "3s", "for": "2s", "kind": "http_error", "status": 500}],
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = read_records(out / "requests.csv")
    injected = rec["fault"].astype(str) != ""
    assert not (rec["status"] == 404).any()
    assert (~injected).sum() >= 15 and (rec["outcome"][~injected] == "ok").all()
    assert injected.sum() > 0 and (rec["status"][injected] == 500).all()
    assert set(rec["response_model"][~injected].astype(str)) == {MODEL_NAME}


def test_a_wrong_path_stops_at_start_with_exit_2(tmp_path: Path, llama_server: str) -> None:
    origin = llama_server.removesuffix("/v1")
    path = scenario(
        tmp_path,
        "llama-404",
        target={"base_url": origin + "/nothing/here", "model": MODEL_NAME},
        workloads=[CHAT],
        load=CLOSED_3,
    )
    proc = run_cli("run", str(path), "--out", str(tmp_path / "run"), timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: target ") and "HTTP 404" in line
    assert not (tmp_path / "run" / "requests.csv").exists()


def test_a_run_whose_every_request_fails_with_commas_ends_with_summary_report_and_no_go(
    tmp_path: Path, llama_server: str
) -> None:
    """Prompts longer than the server's 4096-token context: every attempt gets `HTTP 400:
    request (N tokens) exceeds the available context size (4096 tokens), try increasing it`,
    so every row of requests.csv has a quoted field. The run still ends with its summary,
    its report and a NO-GO, exit 0 (no --fail-on-slo)."""
    long_chat = {**CHAT, "prompt_tokens": 6000, "stream": False}
    path = scenario(
        tmp_path,
        "too-long",
        target={"base_url": llama_server, "model": MODEL_NAME},
        workloads=[long_chat],
        load={"type": "open", "process": "constant", "phases": [{"rate": "4/s", "for": "3s"}]},
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    rec = read_records(out / "requests.csv")
    assert rec.n >= 8
    assert (rec["status"] == 400).all() and (rec["outcome"].astype(str) == "http_error").all()
    errors = set(rec["error"].astype(str))
    assert all("exceeds the available context size (4096 tokens), try" in e for e in errors)
    raw = (out / "requests.csv").read_text().splitlines()[1:]
    assert all('"' in line for line in raw)  # every row quoted: the reader's case
    s = summary(out)
    assert s["verdict"]["overall"] == "no-go", s["verdict"]
    assert s["error_rate"] == pytest.approx(1.0)
    assert "readiness: NO-GO" in proc.stdout
    html = (out / "report.html").read_text()
    assert "exceeds the available context size" in html
    again = run_cli("report", str(out), timeout=120)  # the report command reads it too
    assert again.returncode == 0, again.stdout + again.stderr
