"""A full disk ends a run with one line, exit 1 and whole records, never a traceback.

The disk fills in a real `loadkit run` (a subprocess, as a user runs it) by a write that
raises ENOSPC: `sitecustomize.py` (on PYTHONPATH, so every Python process of the run loads
it: the CLI, the mock, Locust) makes the named file fail the way a full disk does. Mid-run,
requests.csv's writes stop after a number of bytes, the last one half-written; at the end,
summary.json or report.html cannot be written.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from loadkit.results.reader import read_records
from tests.run_helpers import run_cli, scenario

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the ENOSPC injection reads /proc/self/fd"
)

SITECUSTOMIZE = """
import errno, io, os

_NAME = os.environ.get("ENOSPC_FILE", "")
_AFTER = int(os.environ.get("ENOSPC_AFTER_BYTES", "0"))
_written = {}
_os_write = os.write
_io_open = io.open


def _full(name):
    return OSError(errno.ENOSPC, "No space left on device", name)


def _write(fd, data):
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        name = ""
    if not name.endswith("/" + _NAME):
        return _os_write(fd, data)
    done = _written.get(name, 0)
    if done >= _AFTER:
        raise _full(name)
    n = _os_write(fd, bytes(data[: _AFTER - done]))  # the last write: half a batch
    _written[name] = done + n
    return n


def _open(file, mode="r", *args, **kwargs):
    f = _io_open(file, mode, *args, **kwargs)
    if "w" in mode and str(file).endswith("/" + _NAME):
        f.close()  # the file is created, its bytes never land
        raise _full(str(file))
    return f


if _NAME:
    os.write = _write
    io.open = _open
"""


def _run(tmp_path: Path, file: str, after_bytes: int = 0):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = scenario(tmp_path, load={"type": "open", "phases": [{"rate": "40/s", "for": "3s"}]})
    out = tmp_path / "run"
    args = ["run", str(path), "--out", str(out)]
    env = {"PYTHONPATH": str(site), "ENOSPC_FILE": file, "ENOSPC_AFTER_BYTES": str(after_bytes)}
    return run_cli(*args, env=env, timeout=120), out


def _rows(csv_path: Path) -> int:
    with csv_path.open(newline="", encoding="utf-8") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [x for x in stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_summary_json_on_a_full_disk_is_one_line_and_the_records_are_whole(
    tmp_path: Path,
) -> None:
    p, out = _run(tmp_path, "summary.json.tmp")
    assert p.returncode == 1, p.stdout + p.stderr
    line = _one_error_line(p.stderr)
    n = _rows(out / "requests.csv")
    assert n > 50  # 40/s for 3 s
    assert line == (
        f"error: no space left on device: could not write {out}/summary.json.tmp; "
        f"{out}/requests.csv is complete ({n} rows); run `loadkit report {out}` once there "
        "is space"
    )
    assert not (out / "summary.json").exists()
    assert not (out / "summary.json.tmp").exists()  # no empty file left behind
    assert read_records(out / "requests.csv").n == n


def test_report_on_a_full_disk_is_one_line(tmp_path: Path) -> None:
    p, out = _run(tmp_path, "report.html.tmp")
    assert p.returncode == 1, p.stdout + p.stderr
    line = _one_error_line(p.stderr)
    assert "could not write" in line and "report.html.tmp" in line
    assert f"is complete ({_rows(out / 'requests.csv')} rows)" in line
    assert (out / "summary.json").is_file()  # written before the report


def test_records_on_a_disk_that_fills_mid_run_stay_whole_and_are_reported(
    tmp_path: Path,
) -> None:
    p, out = _run(tmp_path, "requests.csv", after_bytes=15000)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    data = (out / "requests.csv").read_bytes()
    assert 0 < len(data) <= 15000 and data.endswith(b"\n")  # cut back to its last whole line
    recs = read_records(out / "requests.csv")
    assert not recs.truncated and recs.n == _rows(out / "requests.csv") >= 1
    msg = [x for x in p.stdout.splitlines() if x.startswith("error: could not write")]
    assert len(msg) == 1, p.stdout
    assert f"holds the run's first {recs.n} rows" in msg[0]
    assert "No space left on device" in msg[0]
    # the summary covers the rows that were written, and says how many were not
    doc = json.loads((out / "summary.json").read_text())
    assert doc["attempts"] == recs.n and doc["records_lost"] > 0
    assert f"{doc['records_lost']} later ones were lost" in msg[0]
