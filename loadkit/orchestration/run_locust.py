"""`loadkit run`'s Locust subprocess: its command line, its progress lines, stopping it.

The parent process never imports Locust (gevent monkey-patches sockets at import). It runs
`python -m locust -f loadkit/traffic/locustfile.py` in its own session, shows the progress
line the locustfile prints every second, copies Locust's console to locust.log, and on
Ctrl-C or SIGTERM sends Locust `STOP_SIGNAL` (a drain, like the end of the timeline); a
second Ctrl-C kills Locust's process group. If `loadkit run` itself dies, the kernel sends
Locust the same signal (PR_SET_PDEATHSIG), so it drains on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from loadkit.results import run_folder as rf
from loadkit.serving.launch import term_with_parent
from loadkit.traffic.config import DRAIN_S, LOCUSTFILE, PROGRESS_PREFIX, STOP_SIGNAL

if TYPE_CHECKING:
    from loadkit.orchestration.run_options import RunOptions

# After the stop signal, how long beyond the drain the parent waits before it kills Locust
# (the master waits for its workers' last records; Locust gives workers 60 s to stop).
STOP_GRACE_S = 75.0


def locust_command(
    opts: RunOptions, folder: rf.RunFolder, host: str, locustfile: Path = LOCUSTFILE
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--host",
        host,
        "--csv",
        str(folder.locust_csv_prefix),
        "--html",
        str(folder.locust_html),
        "--exit-code-on-error",
        "0",
        "--stop-timeout",
        f"{opts.drain_s:g}",
        "--loglevel",
        "INFO",
    ]
    if opts.web:
        cmd += ["--web-host", "127.0.0.1", "--web-port", str(opts.web_port), "--autostart"]
    else:
        cmd += ["--headless", "--only-summary"]
    if opts.master:
        cmd += ["--master", "--master-bind-host", opts.master_bind_host]
        cmd += ["--master-bind-port", str(opts.master_bind_port)]
        # Rebalancing: a worker that goes missing hands its users to the others at once.
        cmd += ["--expect-workers", str(opts.expect_workers), "--enable-rebalancing"]
    elif opts.processes > 1:
        # A private master port on loopback: never Locust's default 5557, where workers of
        # another run on this machine would join ours.
        port = str(_free_port())
        cmd += ["--processes", str(opts.processes), "--master-bind-host", "127.0.0.1"]
        cmd += ["--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port]
    return cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Progress:
    """Shows the locustfile's progress events as one line (rewritten in place on a terminal)."""

    def __init__(self, out: IO[str]):
        self.out = out
        self.tty = out.isatty()
        self.last: dict[str, Any] = {}
        self._last_plain = 0.0
        self.events: list[dict[str, Any]] = []
        self.listeners: list[Any] = []  # callables given every event (the chaos drill)

    def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        for listener in self.listeners:
            listener(event)
        if kind == "progress":
            self.last = event
            line = (
                f"{event['elapsed_s']:6.0f}s of {event['total_s']:.0f}s  "
                + _load_part(event)
                + f"{event['rps']:7.1f} req/s  "
                f"requests {event['requests']}  errors {event['errors']}"
            )
            if self.tty:
                self.out.write("\r" + line + "   ")
                self.out.flush()
            elif time.monotonic() - self._last_plain >= 5.0:
                self._last_plain = time.monotonic()
                self.out.write(line + "\n")
                self.out.flush()
        else:
            self.events.append(event)
            self.newline()
            if event.get("message"):
                self.out.write(f"{event['message']}\n")
                self.out.flush()

    def newline(self) -> None:
        if self.tty and self.last:
            self.out.write("\n")
            self.last = {}


def _load_part(event: dict[str, Any]) -> str:
    """Closed loop: users; open loop: arrivals planned and sent per second, in flight."""
    if "planned_per_s" in event:
        return (
            f"planned {event['planned_per_s']:5.1f}/s  sent {event['sent_per_s']:5.1f}/s  "
            f"in flight {event['in_flight']:>4}  "
        )
    return f"users {event.get('users', 0):>4}  "


def _pump(proc: subprocess.Popen[str], log: IO[str], progress: Progress) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(PROGRESS_PREFIX):
            try:
                progress.handle(json.loads(line[len(PROGRESS_PREFIX) :]))
            except (ValueError, KeyError):
                log.write(line)
            continue
        log.write(line)
        log.flush()


@contextlib.contextmanager
def _signals_to_interrupt() -> Iterator[None]:
    """SIGTERM to `loadkit run` behaves like Ctrl-C: stop, finish the files and the summary."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_locust(
    cmd: list[str],
    env: dict[str, str],
    folder: rf.RunFolder,
    out: IO[str],
    drill: Any = None,
    drain_s: float = DRAIN_S,
) -> tuple[int, bool, Progress]:
    """Run Locust to the end; returns (exit code, interrupted, progress).

    The first Ctrl-C/SIGTERM sends Locust `STOP_SIGNAL` (a drain, like the timeline's end)
    once the locustfile said it handles it (`ready`); before that nothing runs yet and
    SIGTERM ends it. A second Ctrl-C, or a drain that overruns by `STOP_GRACE_S`, kills
    Locust's process group: the writer writes whole lines, so requests.csv stays readable.
    """
    progress = Progress(out)
    if drill is not None:  # the fault timeline follows Locust's clock and may stop the run
        progress.listeners.append(drill.on_event)
    interrupted = False
    with open(folder.locust_log, "a", encoding="utf-8") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not Locust directly
            bufsize=1,
            preexec_fn=term_with_parent(STOP_SIGNAL),
        )
        if drill is not None:
            drill.attach(proc, STOP_SIGNAL)
        pump = threading.Thread(target=_pump, args=(proc, log, progress), daemon=True)
        pump.start()
        try:
            with _signals_to_interrupt():
                deadline: float | None = None
                while True:
                    try:
                        timeout = None if deadline is None else max(deadline - time.monotonic(), 0)
                        rc = proc.wait(timeout)
                        break
                    except subprocess.TimeoutExpired:
                        late = drain_s + STOP_GRACE_S
                        out.write(f"Locust did not stop within {late:g} s: killed\n")
                        out.flush()
                        deadline = None
                        _signal(proc, signal.SIGKILL)
                    except KeyboardInterrupt:
                        if interrupted:  # second Ctrl-C: no more waiting
                            out.write("killing Locust: requests in flight are not recorded\n")
                            out.flush()
                            _signal(proc, signal.SIGKILL)
                            continue
                        interrupted = True
                        progress.newline()
                        out.write(
                            f"stopping: in-flight requests get {drain_s:g} s to finish, then "
                            "the files are closed (Ctrl-C again to kill)\n"
                        )
                        out.flush()
                        ready = any(e.get("event") == "ready" for e in list(progress.events))
                        _signal(proc, STOP_SIGNAL if ready else signal.SIGTERM)
                        deadline = time.monotonic() + drain_s + STOP_GRACE_S
        finally:
            if proc.poll() is None:
                _signal(proc, signal.SIGKILL)
                proc.wait()
            _reap_group(proc.pid)
            pump.join(timeout=5)
    progress.newline()
    return rc, interrupted, progress


def _reap_group(pgid: int, grace_s: float = 3.0) -> None:
    """End what is left of Locust's process group (its forked workers) once the master is gone.

    By then the master has every worker's last batch; a worker left waiting for its next
    instructions would otherwise outlive the run.
    """
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _signal(proc: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if sig == signal.SIGKILL:
            os.killpg(proc.pid, sig)  # Locust's worker processes too
        else:
            proc.send_signal(sig)
