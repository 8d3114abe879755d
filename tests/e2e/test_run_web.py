"""`loadkit run --web`: Locust's web UI on loopback; Ctrl-C after the timeline finishes the run."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request

from tests.run_helpers import loadkit_cmd, scenario, summary


def test_web_ui_then_ctrl_c_finishes(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = scenario(tmp_path, "web")  # 3 s open loop
    out = tmp_path / "run"
    log = tmp_path / "stdout.txt"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            loadkit_cmd("run", str(path), "--out", str(out), "--web", "--web-port", str(port)),
            stdout=f,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "timeline is over" not in log.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            assert resp.status == 200
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert f"Locust web UI: http://127.0.0.1:{port}" in text and "TTFT" in text
    s = summary(out)
    assert s["stop_reason"] == "completed" and s["attempts"] >= 50
