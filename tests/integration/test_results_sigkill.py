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
            print(i, time.monotonic(), flush=True)  # the rows handed to the writer, when
            time.sleep(0.005)
    """
)


def test_writer_survives_sigkill(tmp_path):
    """Killed at any moment, the file holds whole lines only, every row handed to the writer
    more than a second before the kill (its flush interval), and none it was not given."""
    path = tmp_path / "requests.csv"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_CHILD, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    handed: list[tuple[int, float]] = []  # (rows written so far, child's monotonic clock)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().split()  # writing has started
        handed.append((int(first[0]), float(first[1])))
        time.sleep(1.6)
        killed_at = time.monotonic()  # the same CLOCK_MONOTONIC as the child's
        os.kill(proc.pid, signal.SIGKILL)
        for line in proc.stdout:
            i, t = line.split()
            handed.append((int(i), float(t)))
    finally:
        proc.kill()
        proc.wait()
    recs = read_records(path)
    assert not recs.truncated  # whole lines only
    assert recs["request_id"].tolist() == [f"r{i}" for i in range(len(recs))]
    # rows handed over more than a second (+0.2 s for a busy machine) before the kill
    due = max((i for i, t in handed if t <= killed_at - 1.2), default=0)
    assert due >= handed[0][0]  # the child wrote for 0.4 s before that: a real bound
    assert len(recs) >= due, (len(recs), due)
    reported_before = max(i for i, _ in handed)
    assert len(recs) < reported_before + 200  # only rows the child had written
