"""The broken-scenario corpus: each file gives exactly one clear line and exit code 2.

Inputs that cannot be files here (devices, pipes, folders, files over 10 MB, a missing
file) are in test_scenario_hostile.py. Every `tests/broken_scenarios/*.yaml` starts with
`# expect: <fragment>`; `{file}` in the fragment stands for the case's own name. Files
under `parts/` are parents used by the `extends` cases, not cases themselves. The real CLI
runs in a subprocess, as a user runs it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.scenario_support import assert_one_line_error as _assert_one_line_error
from tests.scenario_support import validate as _validate

CORPUS = Path(__file__).resolve().parent / "broken_scenarios"
CASES = sorted(CORPUS.glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    assert first.startswith("# expect: "), f"{path.name}: line 1 must be '# expect: ...'"
    return first[len("# expect: ") :].replace("{file}", path.name)


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_broken_scenario_gives_one_clear_line(path: Path) -> None:
    _assert_one_line_error(_validate(path.name, CORPUS), _expected(path))


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "zero.yaml").write_bytes(b"")
    _assert_one_line_error(_validate("zero.yaml", tmp_path), "zero.yaml:1: the file is empty")


def test_deep_nesting(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    proc = _validate("deep.yaml", tmp_path)
    _assert_one_line_error(proc, "deep.yaml:1:")
