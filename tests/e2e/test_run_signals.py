"""Ctrl-C, SIGTERM and a killed `loadkit run` while answers are streaming: no row is lost.

Five closed-loop users ask for long fixed-length answers (200 tokens at 25 ms a token, 5 s
each) from a mock this test starts itself, so the mock outlives the run and its /metrics
say what it really served. The signal comes while every user has a request in flight.
Afterwards every request the mock started is in requests.csv, `ok` (finished within the
drain) or `aborted` (with its send time and the tokens it got), and the `ok` rows are
exactly the mock's `vllm:request_success_total`.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from loadkit.results.reader import read_records
from tests.conftest import StartMock, http_request
from tests.ports import free_port
from tests.run_helpers import loadkit_cmd, pids_with, summary

pytestmark = pytest.mark.timeout(90)

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
USERS = 5
TOKENS = 200
# Steady decode: 25 ms a token whatever the batch, so an answer takes 5 s.
MOCK = {
    "prefill_overhead_ms": 5,
    "prefill_ms_per_token": 0.0,
    "decode_step_ms": 25,
    "decode_step_ms_per_seq": 0.0,
    "jitter": {"sigma": 0.0, "step_sigma": 0.0, "tail_prob": 0.0},
    "output_tokens": {"dist": "fixed", "value": 4 * TOKENS},
}


def _scenario(tmp: Path, url: str) -> Path:
    doc: dict[str, Any] = {
        "name": "signals",
        "seed": 3,
        "target": {"base_url": url + "/v1", "model": MODEL},
        "regions": [{"name": "local", "share": "100%"}],
        "workloads": [
            {
                "name": "long",
                "kind": "chat",
                "prompt_tokens": 20,
                "output_tokens": TOKENS,
                "stream": True,
            }
        ],
        "load": {
            "type": "closed",
            "spawn_rate": "50/s",
            "phases": [{"kind": "hold", "users": USERS, "for": "120s"}],
        },
    }
    path = tmp / "signals.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _metrics(url: str) -> dict[str, float]:
    """The mock's counters, summed over labels (one region here)."""
    out: dict[str, float] = {}
    for line in http_request("GET", url + "/metrics").text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        key = name.split("{", 1)[0]
        out[key] = out.get(key, 0.0) + float(value)
    return out


@dataclass
class Outcome:
    rc: int
    out: Path
    stdout: str
    metrics: dict[str, float]  # the mock's, once every Locust process is gone
    stop_s: float  # first signal -> `loadkit run` exited
    before: dict[str, float]  # the mock's, just before the first signal


def _spawn(tmp: Path, args: list[str], name: str) -> subprocess.Popen[str]:
    # Output to files: a pipe would stay open in Locust after `loadkit run` is SIGKILLed.
    return subprocess.Popen(
        loadkit_cmd(*args),
        stdout=open(tmp / f"{name}.out", "w"),  # closed with the process
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # signals from this test only, as from a terminal or supervisor
    )


def _run(
    tmp: Path,
    start_mock: StartMock,
    sigs: list[signal.Signals],
    *extra: str,
    workers: int = 0,
    when: str = "streaming",
) -> Outcome:
    """Start a run, wait until every user streams, send `sigs` (0.5 s apart), wait for the end.

    `when="completed"`: signal as soon as the mock has finished its first answers (their
    rows are then still in the writer's one-second buffer).
    """
    mock = start_mock(MOCK, "--profile", "vllm-h100")
    path = _scenario(tmp, mock.url)
    out = tmp / "run"
    # no calibration: the mock counts only the run's own requests
    args = ["run", str(path), "--out", str(out), "--no-calibrate", *extra]
    port = free_port()
    if workers:
        args += ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)]
        args += ["--expect-workers", str(workers)]
    proc = _spawn(tmp, args, "loadkit")
    helpers = [
        _spawn(tmp, ["worker", "--master-host", "127.0.0.1", "--master-port", str(port)], f"w{i}")
        for i in range(workers)
    ]
    try:
        deadline = time.monotonic() + 45
        while True:
            m = _metrics(mock.url)
            if when == "streaming" and m["vllm:num_requests_running"] >= USERS:
                time.sleep(1.0)  # every in-flight answer is partly there
                break
            if when == "completed" and m["vllm:request_success_total"] >= 1:
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("the run never had its requests streaming:\n" + _text(tmp, "loadkit"))
            time.sleep(0.05)
        before = _metrics(mock.url)
        t0 = time.monotonic()
        for i, sig in enumerate(sigs):
            if i:
                time.sleep(0.5)
            os.kill(proc.pid, sig)
        rc = proc.wait(timeout=45)
        stop_s = time.monotonic() - t0
        deadline = time.monotonic() + 40  # Locust outlives a SIGKILLed loadkit while it drains
        while pids_with(str(out)) and time.monotonic() < deadline:
            time.sleep(0.1)
        for h in helpers:
            h.wait(timeout=20)
    finally:
        for p in [proc, *helpers]:
            if p.poll() is None:
                p.kill()
                p.wait()
    leftover = pids_with(str(out))
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover, "Locust ran on after the run"
    return Outcome(rc, out, _text(tmp, "loadkit"), _metrics(mock.url), stop_s, before)


def _text(tmp: Path, name: str) -> str:
    return (tmp / f"{name}.out").read_text(errors="replace")


def _check_rows(o: Outcome, summary_expected: bool = True) -> dict[str, int]:
    """Every request the mock started is a row, `ok` rows are what it served; returns counts."""
    rec = read_records(o.out / "requests.csv")
    assert not rec.truncated
    outcomes = rec["outcome"].tolist()
    assert set(outcomes) <= {"ok", "aborted"}, outcomes
    ok = outcomes.count("ok")
    aborted = outcomes.count("aborted")
    started = int(o.metrics["vllm:time_to_first_token_seconds_count"])
    with_tokens = sum(1 for t in rec["ttft_ms"].tolist() if not math.isnan(t))
    counts = {"rows": len(outcomes), "ok": ok, "aborted": aborted, "mock_started": started}
    counts["mock_served"] = int(o.metrics["vllm:request_success_total"])
    print("counts", counts)  # the note's figures: pytest -s
    assert ok == counts["mock_served"], (counts, o.stdout)
    assert with_tokens == started, (counts, o.stdout)  # nothing the mock streamed is missing
    for i, outcome in enumerate(outcomes):
        if outcome == "aborted":
            assert math.isfinite(float(rec["t_sent"][i]))
            assert float(rec["completion_tokens"][i]) > 0  # the part of the answer it got
    if summary_expected:
        s = summary(o.out)
        assert s["attempts"] == len(outcomes)
        assert s["stop_reason"] == "interrupted"
    return counts


def test_ctrl_c_lets_in_flight_answers_finish(tmp_path, start_mock) -> None:
    o = _run(tmp_path, start_mock, [signal.SIGINT])
    assert o.rc == 130, o.stdout
    counts = _check_rows(o)
    # 10 s of drain is more than the 4 s the answers had left: every one finished.
    assert counts["aborted"] == 0 and counts["ok"] >= USERS
    assert counts["mock_served"] - o.before["vllm:request_success_total"] >= USERS
    assert o.stop_s < 30


def test_sigterm_with_short_drain_writes_aborted_rows(tmp_path, start_mock) -> None:
    o = _run(tmp_path, start_mock, [signal.SIGTERM], "--drain", "1")
    assert o.rc == 130, o.stdout
    counts = _check_rows(o)
    # A 1 s drain cannot finish answers with 4 s to go: cut off, with their partial tokens.
    assert counts["aborted"] == USERS


def test_loadkit_killed_locust_drains_on_its_own(tmp_path, start_mock) -> None:
    o = _run(tmp_path, start_mock, [signal.SIGKILL])
    assert o.rc == -signal.SIGKILL
    # Nobody is left to write summary.json: the rows are all there.
    counts = _check_rows(o, summary_expected=False)
    assert counts["aborted"] == 0 and counts["ok"] >= USERS
    log = (o.out / "locust.log").read_text(errors="replace")
    assert "loadkit run is gone" in log


def test_ctrl_c_with_two_processes(tmp_path, start_mock) -> None:
    o = _run(tmp_path, start_mock, [signal.SIGINT], "--processes", "2")
    assert o.rc == 130, o.stdout
    counts = _check_rows(o)
    assert counts["aborted"] == 0 and counts["ok"] >= USERS


def test_ctrl_c_master_and_worker(tmp_path, start_mock) -> None:
    o = _run(tmp_path, start_mock, [signal.SIGINT], workers=1)
    assert o.rc == 130, o.stdout
    counts = _check_rows(o)
    assert counts["aborted"] == 0 and counts["ok"] >= USERS


def test_second_ctrl_c_stops_at_once_and_keeps_the_file(tmp_path, start_mock) -> None:
    """The first Ctrl-C comes as the first answers finish, so each user has just sent its
    second request (5 s of answer to go); the second comes 0.5 s later. Ignored, the 10 s
    drain would let those USERS answers finish (a single Ctrl-C and its drain end in ~7 s):
    killed at once, none of them does."""
    o = _run(tmp_path, start_mock, [signal.SIGINT, signal.SIGINT], when="completed")
    print("stop_s", round(o.stop_s, 2), "served", o.metrics["vllm:request_success_total"])
    assert o.rc == 130, o.stdout
    assert "killing Locust: requests in flight are not recorded" in o.stdout
    # only the first round of answers (one per user) was ever served: the second round,
    # in flight at the second Ctrl-C, was cut, not drained
    assert o.metrics["vllm:request_success_total"] <= USERS, (o.metrics, o.stdout)
    assert o.stop_s < 6  # ignored, the drain alone is the answers' 4.5 s to go + summary, report
    rec = read_records(o.out / "requests.csv")
    assert not rec.truncated
    outcomes = rec["outcome"].tolist()
    # The answers finished before the first Ctrl-C were in the writer's buffer: kept.
    assert outcomes.count("ok") >= o.before["vllm:request_success_total"] >= 1
    assert summary(o.out)["attempts"] == len(outcomes)
