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
