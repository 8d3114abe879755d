"""`loadkit validate` and `loadkit init` as a user runs them: the plan, exit codes, the starter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadkit.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_validate_cli_prints_the_plan_and_exits_0() -> None:
    proc = _cli("validate", "scenarios/production.yaml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = proc.stdout
    assert "scenario  production" in out
    assert "daily curve 'conversation'" in out
    assert "apac" in out and "summarise" in out
    assert "estimated for" in out and "uplift eu x1.1" in out


def test_init_writes_a_valid_starter_and_refuses_to_overwrite(tmp_path: Path) -> None:
    proc = _cli("init", "mine.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mine.yaml").is_file()
    assert _cli("validate", "mine.yaml", cwd=tmp_path).returncode == 0
    before = (tmp_path / "mine.yaml").read_text()
    again = _cli("init", "mine.yaml", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip() == "error: mine.yaml: already exists; not overwriting it"
    assert (tmp_path / "mine.yaml").read_text() == before
