"""The record writer in a real child process killed with SIGKILL: whole lines stay on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from loadkit.results.reader import read_records

REPO = Path(__file__).resolve().parents[2]

KILL_CHILD = textwrap.dedent(
    """
    import sys, time
    from loadkit.results.writer import RecordWriter
    from tests.unit.test_results_io import make_record
    w = RecordWriter(sys.argv[1])
    i = 0
    while True:
        w.write(make_record(i, error="x" * (i % 300)))
        i += 1
        if i % 200 == 0:
            print(i, flush=True)
            time.sleep(0.005)
    """
)


def test_writer_survives_sigkill(tmp_path):
    path = tmp_path / "requests.csv"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_CHILD, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = int(proc.stdout.readline())  # writing has started
        time.sleep(1.6)
        reported_before = first
        os.kill(proc.pid, signal.SIGKILL)
        for line in proc.stdout:
            reported_before = max(reported_before, int(line))
    finally:
        proc.kill()
        proc.wait()
    recs = read_records(path)
    assert not recs.truncated  # whole lines only
    assert len(recs) >= first  # rows written >1 s before the kill are on disk
    assert recs["request_id"].tolist() == [f"r{i}" for i in range(len(recs))]
