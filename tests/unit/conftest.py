"""The fast tier's promise, enforced: a unit test starts no process and opens no socket.

A test that needs either belongs in tests/integration (real servers on loopback) or tests/e2e
(the CLI as a user runs it); here it fails at once with the reason, instead of slowing the
fast loop down unnoticed.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from typing import NoReturn

import pytest


class TierViolation(AssertionError):
    """A unit test reached for a process or a socket."""


def _refuse(what: str) -> Callable[..., NoReturn]:
    def refuse(*_args: object, **_kwargs: object) -> NoReturn:
        raise TierViolation(
            f"a unit test may not {what}; move the test to tests/integration or tests/e2e"
        )

    return refuse


@pytest.fixture(scope="session", autouse=True)
def _warm_libraries() -> None:
    """matplotlib asks fc-list for the system fonts once per process: a library's own
    start-up, not the test's, so it happens before the guard goes up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.font_manager


@pytest.fixture(autouse=True)
def _no_processes_no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("start a process"))
    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, _refuse(f"{name} a socket"))
    monkeypatch.setattr(socket, "create_connection", _refuse("open a connection"))


# A valid 1x1 PNG: what a chart is, in a unit test that is not about the chart's pixels.
_PLACEHOLDER_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4"
    "890000000b49444154789c63f80f040009fb03fdfb5e6b2b0000000049454e44ae426082"
)


@pytest.fixture(autouse=True)
def _charts_rasterised_where_they_are_the_subject(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rasterising a chart (matplotlib's savefig: layout, Agg, PNG) is three quarters of a
    report's time, and a dozen unit tests build a report to check its analysis. Every chart's
    figure is still drawn (its code runs on the test's data); only the PNG is a placeholder,
    unless the test is marked `charts` (the report's own chart tests, and the edge cases:
    no successes, header only). Module-scoped reports are built before this fixture and
    render for real; so does every report an e2e run writes."""
    if request.node.get_closest_marker("charts"):
        return
    from pathlib import Path

    from loadkit.report import style

    def save(fig: object, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_PLACEHOLDER_PNG)
        return path

    monkeypatch.setattr(style, "save", save)
