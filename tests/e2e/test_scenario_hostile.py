"""Hostile scenario inputs that cannot live as files in `tests/broken_scenarios/`: devices,
named pipes, folders, files too big to commit, and a reader that goes away.

Each runs the real CLI in a subprocess (with a time and a memory bound, so a regression
fails the test rather than hanging or exhausting the machine) and expects exit code 2 and
one line `error: FILE:LINE: key: message`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.scenario_support import assert_one_line_error, validate

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = (ROOT / "scenarios" / "quickstart.yaml").read_text(encoding="utf-8")
COMMENT = "# " + "x" * 97 + "\n"  # 100 bytes

unix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes and /dev")


def _line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


@unix_only
def test_dev_zero_as_the_scenario(tmp_path: Path) -> None:
    m = assert_one_line_error(validate("/dev/zero", tmp_path), "is a character device")
    assert (m["file"], m["line"], m["key"]) == ("/dev/zero", "1", None)


@unix_only
def test_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    m = assert_one_line_error(validate("pipe.yaml", tmp_path, timeout=30), "named pipe")
    assert (m["file"], m["line"]) == ("pipe.yaml", "1")


@unix_only
def test_named_pipe_as_the_extends_target(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "parent.yaml")
    (tmp_path / "child.yaml").write_text("extends: parent.yaml\nname: child\n")
    m = assert_one_line_error(validate("child.yaml", tmp_path, timeout=30), "named pipe")
    assert (m["file"], m["line"], m["key"]) == ("child.yaml", "1", "extends")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "adir.yaml").mkdir()
    m = assert_one_line_error(validate("adir.yaml", tmp_path), "is a directory")
    assert (m["file"], m["line"]) == ("adir.yaml", "1")


def test_missing_file(tmp_path: Path) -> None:
    m = assert_one_line_error(validate("nope.yaml", tmp_path), "file not found")
    assert (m["file"], m["line"]) == ("nope.yaml", "1")


def test_file_over_10_mb_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(QUICKSTART + COMMENT * 110_000)  # 11 MB
    m = assert_one_line_error(validate("big.yaml", tmp_path), "a scenario must be at most 10 MB")
    assert (m["file"], m["line"]) == ("big.yaml", "1")


def test_extends_target_over_10_mb(tmp_path: Path) -> None:
    (tmp_path / "big.yaml").write_text(QUICKSTART + COMMENT * 110_000)
    (tmp_path / "child.yaml").write_text("extends: big.yaml\nname: child\n")
    m = assert_one_line_error(validate("child.yaml", tmp_path), "big.yaml: file is 11,")
    assert (m["file"], m["line"], m["key"]) == ("child.yaml", "1", "extends")


def test_3_mb_file_keeps_the_line_of_its_mistake(tmp_path: Path) -> None:
    text = QUICKSTART.replace("regions:\n", COMMENT * 30_000 + "regions:\n")
    text = text.replace("share: 100%", "share: 140%")
    (tmp_path / "big.yaml").write_text(text)
    m = assert_one_line_error(validate("big.yaml", tmp_path), "between 0% and 100%")
    assert (m["file"], m["key"]) == ("big.yaml", "regions[0].share")
    assert int(m["line"]) == _line_of(text, "share: 140%") > 30_000


def _phases_file(tmp_path: Path, n: int) -> str:
    phases = "    - {kind: hold, users: 5, for: 1s}\n" * n
    old = "    - {kind: ramp, users: 5, for: 5s}\n    - {kind: hold, users: 5, for: 25s}\n"
    text = QUICKSTART.replace(old, phases)
    (tmp_path / f"phases{n}.yaml").write_text(text)
    return text


def test_60k_phases_stop_early_at_the_phases(tmp_path: Path) -> None:
    """Tens of thousands of phases stop at the loader's 50,000-values guard, inside the
    phases, before the rest of the file is read into objects: 60,000 and 200,000 phases
    (3.3x the YAML) stop at the same line with the same message, in about the same time;
    reading them all would take ~3x longer for the larger one."""
    text = _phases_file(tmp_path, 60_000)
    _phases_file(tmp_path, 200_000)
    times = {}
    for n in (60_000, 200_000):
        t0 = time.perf_counter()
        proc = validate(f"phases{n}.yaml", tmp_path)
        times[n] = time.perf_counter() - t0
        m = assert_one_line_error(proc, "more than 50,000 values in one file")
        assert m["file"] == f"phases{n}.yaml"
        line = int(m["line"])
        assert _line_of(text, "  phases:") < line < _line_of(text, "  phases:") + 60_000 // 5
        assert (m["key"] or "").startswith("load.phases["), m[0]
    assert times[200_000] < 1.5 * times[60_000], times


def _valid_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "ok.yaml"
    path.write_text(QUICKSTART)
    return path


@unix_only
def test_closed_stdout_exits_quietly(tmp_path: Path) -> None:
    """The reader is gone before loadkit writes: every write meets a broken pipe."""
    path = _valid_scenario(tmp_path)
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(tmp_path / "stderr.txt", "w+") as err:
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "loadkit.cli", "validate", str(path)],
                stdout=write_end,
                stderr=err,
                timeout=60,
            )
        finally:
            os.close(write_end)
        err.seek(0)
        stderr = err.read()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr == ""
    assert proc.returncode == 1


def _pipeline(shell: str) -> subprocess.CompletedProcess[str]:
    """Run a bash pipeline; its exit status is loadkit's (the first command's)."""
    return subprocess.run(
        ["bash", "-c", shell + "; exit ${PIPESTATUS[0]}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@unix_only
def test_validate_piped_into_head(tmp_path: Path) -> None:
    """`head` has its 10 bytes and is gone before loadkit (starting up) writes its plan."""
    path = _valid_scenario(tmp_path)
    cmd = f'"{sys.executable}" -m loadkit.cli validate "{path}"'
    proc = _pipeline(f"{{ printf 0123456789; {cmd}; }} | head -c 10")
    assert proc.stdout == "0123456789"
    assert proc.stderr == "", proc.stderr
    assert proc.returncode == 1


@unix_only
def test_trace_piped_into_head() -> None:
    """Another printing command, with more output than a pipe holds: the reader leaves
    while loadkit is still writing."""
    trace = ROOT / "scenarios" / "traces" / "azure_conv_example.csv"
    cmd = f'"{sys.executable}" -m loadkit.cli trace ' + " ".join([f'"{trace}"'] * 400)
    proc = _pipeline(f"{cmd} | head -c 10")
    assert len(proc.stdout) == 10
    assert proc.stderr == "", proc.stderr
    assert proc.returncode == 1
