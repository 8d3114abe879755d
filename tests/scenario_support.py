"""Running `loadkit validate` as a user does, and checking its one-line error."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

# `error: FILE:LINE: key.path: message`; a whole-file problem (missing, empty, too big) has
# no key path.
ERROR_LINE = re.compile(
    r"error: (?P<file>.+?):(?P<line>[1-9]\d*): (?:(?P<key>[\w.\[\]<>/${}-]+): )?(?P<message>.+)"
)


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    # A regression that reads an endless file must fail the test, not the machine.
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def validate(arg: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m loadkit.cli validate ARG` in `cwd`, with a time and a memory bound."""
    return subprocess.run(
        [sys.executable, "-m", "loadkit.cli", "validate", arg],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit_memory if sys.platform != "win32" else None,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> re.Match[str]:
    """Exit 2, nothing on stdout, one `error: FILE:LINE: ...` line on stderr holding `fragment`."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("error: ")
    assert fragment in lines[0], f"expected {fragment!r} in {lines[0]!r}"
    match = ERROR_LINE.fullmatch(lines[0])
    assert match is not None, f"not `error: FILE:LINE: key: message`: {lines[0]!r}"
    return match
