"""Start and stop loadkit's own servers (mock provider, chaos proxy) as subprocesses.

Locust monkey-patches sockets with gevent at import while the mock and the proxy are
asyncio, so they never share an interpreter: each server runs as `sys.executable -m ...`,
binds 127.0.0.1 on an OS-chosen port, prints its base URL as the first line of stdout and
answers `GET /health`. This module waits for both and stops the process on every exit path.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from loadkit.errors import UserError


@dataclass
class ServerProcess:
    """A running server subprocess and what it printed after its URL."""

    name: str
    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def term_with_parent(sig: int = signal.SIGTERM) -> Callable[[], object] | None:
    """A preexec_fn: signal the child (SIGTERM, or `sig`) when its parent dies (even by
    SIGKILL), so a server or Locust never runs on as an orphan.

    libc is looked up here, in the parent: the child runs only the prctl call (Linux; None
    elsewhere).
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, int(sig))  # 1 = PR_SET_PDEATHSIG


def _read_first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout)
    return box[0].strip() if box else ""


def _drain(proc: subprocess.Popen[str], sink: list[str]) -> None:
    """Keep reading stdout so the server never blocks on a full pipe."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if len(sink) < 10_000:
            sink.append(line.rstrip("\n"))


def wait_healthy(url: str, timeout: float = 10.0, path: str = "/health") -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + path, timeout=2.0) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.05)
    raise UserError(f"{url}{path} did not answer within {timeout:g}s ({last})")


def start_server(
    name: str,
    module_args: Sequence[str],
    timeout: float = 20.0,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Run `python -m <module_args...>`, read its URL from the first stdout line, wait healthy."""
    cmd = [sys.executable, "-m", *module_args]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        preexec_fn=term_with_parent(),
    )
    url = _read_first_line(proc, timeout)
    if not url.startswith("http"):
        proc.kill()
        proc.wait()
        raise UserError(f"{name} did not start: {' '.join(cmd[1:])} printed {url!r}")
    server = ServerProcess(name=name, url=url, process=proc)
    threading.Thread(target=_drain, args=(proc, server.lines), daemon=True).start()
    try:
        wait_healthy(url, timeout)
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running_server(
    name: str,
    module_args: Sequence[str],
    timeout: float = 20.0,
    env: dict[str, str] | None = None,
) -> Iterator[ServerProcess]:
    """Context manager form of `start_server`; the process is stopped on any exit."""
    server = start_server(name, module_args, timeout=timeout, env=env)
    try:
        yield server
    finally:
        server.stop()
