"""A drill driven by hand: `loadkit chaos --journal FILE`, then `loadkit report RUN --faults
FILE` puts its fault windows on the run's clock."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from loadkit.chaos.control_client import ChaosControl
from loadkit.results.faults_schema import read_fault_events
from loadkit.results.schema import HEADER_LINE, to_csv_line
from loadkit.serving.launch import running_server
from tests.records import FAILED, record


def test_a_hand_driven_drill_is_journaled_and_imported(tmp_path: Path, mock_server) -> None:
    journal = tmp_path / "drill-faults.csv"
    t0 = time.time()  # the run "starts" now; the proxy's clock starts later
    argv = ["loadkit.chaos", "--upstream", mock_server.url, "--journal", str(journal)]
    with running_server("chaos proxy", argv) as proxy:
        control = ChaosControl(proxy.url)
        time.sleep(0.3)
        control.put({"id": "by-hand", "kind": "http_error", "params": {"status": 503}})
        time.sleep(0.5)
        control.remove("by-hand")
        control.put({"id": "left-on", "kind": "latency", "params": {"fixed_ms": 10}})
    # SIGTERM: the proxy journals a clear, closing the window still open
    events = read_fault_events(journal)
    assert [(e.event, e.fault_id) for e in events] == [
        ("start", "by-hand"),
        ("end", "by-hand"),
        ("start", "left-on"),
        ("clear", ""),
    ]
    assert all(e.t_epoch >= t0 for e in events)

    run = tmp_path / "run"
    run.mkdir()
    recs = [record(request_id=f"q{i}", t_sent=i * 50.0) for i in range(60)]
    recs += [record(**{**FAILED, "request_id": "f", "t_sent": 500.0})]
    (run / "requests.csv").write_text(HEADER_LINE + "".join(map(to_csv_line, recs)))
    (run / "summary.json").write_text(json.dumps({"t0_epoch": t0}))
    done = subprocess.run(
        [sys.executable, "-m", "loadkit.cli", "report", str(run), "--faults", str(journal)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "imported 4 fault events (2 windows)" in done.stdout
    summary = json.loads((run / "summary.json").read_text())
    windows = {f["fault_id"]: f for f in summary["faults"]}
    start = windows["by-hand"]["start_s"]
    # placed by wall clock: at least 0.3 s after the run's start, lasting about 0.5 s
    assert 0.25 <= start < 5.0
    assert 0.4 <= windows["by-hand"]["end_s"] - start < 2.0
