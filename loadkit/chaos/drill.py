"""A drill inside `loadkit run`: the proxy between the users and the target, driven from
the scenario's fault timeline, journaled, with the abort watch; always cleaned up.

The runner enters `drill(...)` after the target is up and gives the users the proxy's
region listeners instead of the target's endpoints. The run clock comes from Locust: the
locustfile's `started` event carries its `run_t0` (perf_counter is one clock for every
local process); failing that, the first progress event's elapsed time. An abort stops
Locust like Ctrl-C does (the runner's STOP_SIGNAL: users stop, in-flight requests
get the drain time, records drain) and names the reason.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from loadkit.chaos.control_client import ProxyProcess, start_proxy
from loadkit.chaos.driver import AbortWatch, FaultDriver, Journal, abort_window_s, timeline
from loadkit.errors import UserError


def check_port_free(port: int, source: str) -> None:
    """A listen port another process holds is the user's to free: one line, file:line."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UserError(
                f"{source}: port {port} is in use on 127.0.0.1 ({exc.strerror or exc}); "
                "stop what holds it or choose another listen port"
            ) from None


@dataclass
class Drill:
    proxy: ProxyProcess
    journal: Journal
    driver: FaultDriver
    upstream: dict[str, str]  # region -> the target's URL
    endpoints: dict[str, str]  # region -> the proxy's listener for it
    out: IO[str] | None = None
    proc: subprocess.Popen[str] | None = None
    stop_signal: int = 0
    t0: float | None = None
    abort_reason: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, proc: subprocess.Popen[str], stop_signal: int) -> None:
        """The Locust process an abort stops, and the signal that drains it (the runner's)."""
        self.proc = proc
        self.stop_signal = stop_signal

    def on_event(self, event: Mapping[str, Any]) -> None:
        """Locust's progress events: the first `started` (or progress) starts the timeline."""
        kind = event.get("event")
        with self._lock:
            if self.t0 is not None:
                return
            if kind == "started" and isinstance(event.get("t0"), int | float):
                t0 = float(event["t0"])
                now = time.perf_counter()
                self.t0 = t0 if now - 60.0 < t0 < now + 5.0 else now
            elif kind == "progress" and isinstance(event.get("elapsed_s"), int | float):
                self.t0 = time.perf_counter() - float(event["elapsed_s"])
            else:
                return
            t0 = self.t0
        self.driver.clock = lambda: time.perf_counter() - t0
        self.driver.start()

    def _abort(self, reason: str) -> None:
        self.abort_reason = reason
        if self.out is not None:
            self.out.write(f"\nabort: {reason}; removing every fault and stopping the run\n")
            self.out.flush()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)  # Locust's SIGTERM would drop what is in flight

    def close(self) -> None:
        """Remove every fault, journal it, stop the proxy (idempotent; every exit path)."""
        try:
            self.driver.stop()
        finally:
            self.proxy.stop()


@contextlib.contextmanager
def drill(
    scenario: Any,
    endpoints: Mapping[str, str],
    faults_csv: Path,
    requests_csv: Path,
    scale: float,
    out: IO[str] | None = None,
    hits_csv: Path | None = None,
) -> Iterator[Drill]:
    """Start the proxy (a listener per region, one per upstream behind the target) and
    prepare the driver; clean up on any exit."""
    regions = dict(endpoints)
    first = next(iter(regions.values()))
    upstreams = scenario.target.upstreams
    for u in upstreams:
        check_port_free(u.listen, u.source)
    proxy = start_proxy(
        first,
        regions,
        seed=int(scenario.seed),
        upstream_listeners={u.name: (u.listen, u.url) for u in upstreams},
        hits_file=str(hits_csv) if hits_csv is not None else None,
    )
    try:
        keys = {
            f.where.api_key: os.environ.get(f.where.api_key, "")
            for f in scenario.faults
            if f.where.api_key
        }
        journal = Journal(faults_csv)
        watch = None
        if scenario.abort is not None:
            watch = AbortWatch(scenario.abort, requests_csv, abort_window_s(scenario.abort, scale))
        d = Drill(
            proxy=proxy,
            journal=journal,
            driver=FaultDriver(
                proxy.control, timeline(scenario.faults, scale, keys), journal, lambda: 0.0
            ),
            upstream=regions,
            endpoints={r: proxy.region_urls[r] for r in regions},
            out=out,
        )
        d.driver.abort = watch
        d.driver.on_abort = d._abort
    except BaseException:
        proxy.stop()
        raise
    try:
        yield d
    finally:
        d.close()
