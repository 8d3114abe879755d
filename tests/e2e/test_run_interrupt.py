"""Ctrl-C (SIGINT) or SIGTERM mid-run: users stop, requests.csv and summary.json are complete."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from loadkit.results.reader import read_records
from tests.run_helpers import loadkit_cmd, scenario, summary


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_mid_run_keeps_records_and_summary(tmp_path, sig) -> None:
    path = scenario(
        tmp_path,
        "long",
        load={"type": "open", "process": "constant", "phases": [{"rate": "30/s", "for": "120s"}]},
    )
    out = tmp_path / "run"
    proc = subprocess.Popen(
        loadkit_cmd("run", str(path), "--out", str(out)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        csv = out / "requests.csv"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until records are flowing
            if csv.exists() and csv.stat().st_size > 2000:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no records within 60 s")
        time.sleep(1.0)
        t_sig = time.monotonic()
        os.kill(proc.pid, sig)  # as the terminal's Ctrl-C or a supervisor's SIGTERM would
        stdout, stderr = proc.communicate(timeout=60)
        stop_s = time.monotonic() - t_sig
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert stop_s < 20  # well before the 120 s timeline
    rec = read_records(out / "requests.csv")
    assert not rec.truncated and len(rec) > 30
    s = summary(out)
    assert s["stop_reason"] == "interrupted"
    assert s["attempts"] == len(rec)  # the summary covers every written record
    assert "TTFT" in stdout and "stopped: interrupted" in stdout
    # The mock subprocess and Locust are gone (the mock's config lives in the run folder).
    time.sleep(0.5)
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert str(out) not in cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
