"""Crashes: a killed Locust still leaves a readable requests.csv and a summary; a killed
`loadkit run` takes Locust down cleanly (it finishes the file) instead of orphaning it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from loadkit.results.reader import read_records
from tests.run_helpers import loadkit_cmd, scenario, summary


def _pids_with(text: str, also: str = "") -> list[int]:
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmd = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmd and also in cmd:
            out.append(int(cmdline.parent.name))
    return out


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    path = scenario(
        tmp_path,
        "crash",
        load={"type": "open", "process": "constant", "phases": [{"rate": "30/s", "for": "120s"}]},
    )
    out = tmp_path / "run"
    # Output to files: a pipe would stay open in the grandchildren after a SIGKILL.
    proc = subprocess.Popen(
        loadkit_cmd("run", str(path), "--out", str(out)),
        stdout=open(tmp_path / "stdout.txt", "w"),  # noqa: SIM115 - closed with the process
        stderr=open(tmp_path / "stderr.txt", "w"),  # noqa: SIM115
        text=True,
        start_new_session=True,
    )
    csv = out / "requests.csv"
    deadline = time.monotonic() + 60
    while not (csv.exists() and csv.stat().st_size > 3000):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("no records within 60 s")
        time.sleep(0.2)
    return proc, out


def test_locust_killed_leaves_readable_records_and_summary(tmp_path) -> None:
    proc, out = _start(tmp_path)
    try:
        (locust_pid,) = _pids_with(str(out), "locust\x00-f")
        os.kill(locust_pid, signal.SIGKILL)  # no chance to flush or clean up
        proc.wait(timeout=60)
        stdout = (tmp_path / "stdout.txt").read_text()
        stderr = (tmp_path / "stderr.txt").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, stdout + stderr
    assert "Traceback" not in stderr
    rec = read_records(out / "requests.csv")  # whole lines only: readable
    assert len(rec) > 10
    s = summary(out)
    assert "exited" in s["stop_reason"] and s["attempts"] == len(rec)
    assert _pids_with(str(out)) == []  # the mock is stopped too


def test_loadkit_killed_locust_finishes_the_file(tmp_path) -> None:
    proc, out = _start(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while _pids_with(str(out), "locust\x00-f") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pids_with(str(out), "locust\x00-f") == []  # Locust did not run on as an orphan
    rec = read_records(out / "requests.csv")
    assert not rec.truncated and len(rec) > 10
    # The mock was the killed parent's child: stop it here (loadkit.serving.launch has no
    # parent-death signal of its own).
    for pid in _pids_with(str(out)):
        os.kill(pid, signal.SIGTERM)
