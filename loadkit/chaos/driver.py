"""The fault timeline driver: applies a scenario's faults at their run times, journals every
change to `faults.csv`, and watches the abort conditions.

It runs as a thread of the orchestrating process (`loadkit run`, never a Locust worker), so
exactly one driver speaks to the proxy. Run time is the records' clock: `clock()` returns
seconds since the run start. A compressed run (`--duration`) scales every fault time.
Whatever happens, `stop()` removes all faults and journals a `clear`.
"""

from __future__ import annotations

import csv
import io
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadkit.chaos.control_client import ChaosControl, ChaosControlError
from loadkit.chaos.faults import FaultSpec, fault_from_scenario
from loadkit.chaos.journals import fault_event
from loadkit.results.faults_schema import FAULTS_HEADER_LINE, FaultEvent
from loadkit.scenario.model import Abort, Fault

MIN_ABORT_WINDOW_S = 5.0


@dataclass(frozen=True)
class Step:
    """One change on the timeline, in (scaled) run seconds."""

    t_s: float
    event: str  # start | end
    spec: FaultSpec


def timeline(
    faults: Sequence[Fault], scale: float = 1.0, api_keys: Mapping[str, str] | None = None
) -> list[Step]:
    """Start and end steps, in time order; at equal times ends go first (no false overlap)."""
    steps: list[Step] = []
    for f in faults:
        spec = fault_from_scenario(f, api_keys)
        steps.append(Step(f.at_s * scale, "start", spec))
        steps.append(Step(f.end_s * scale, "end", spec))
    return sorted(steps, key=lambda s: (s.t_s, s.event != "end", s.spec.id))


class Journal:
    """Appends rows to faults.csv and flushes each one (a crash keeps what happened)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("w", newline="", encoding="utf-8")
        self._fh.write(FAULTS_HEADER_LINE)
        self._fh.flush()
        self._w = csv.writer(self._fh, lineterminator="\n")
        self._lock = threading.Lock()
        self.events: list[FaultEvent] = []

    def write(self, ev: FaultEvent) -> None:
        with self._lock:
            if self._fh.closed:
                return
            self._w.writerow(ev.row())
            self._fh.flush()
            self.events.append(ev)

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()


class AbortWatch:
    """Tails requests.csv and says when the last window breaks the scenario's abort limits."""

    def __init__(self, abort: Abort, requests_csv: Path, window_s: float) -> None:
        self.abort = abort
        self.path = requests_csv
        self.window_ms = window_s * 1000.0
        self._offset = 0
        self._cols: dict[str, int] | None = None
        self._rows: deque[tuple[float, bool, float]] = deque()  # t_sent, failed, ttft

    def _read_new(self) -> None:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        self._offset += end + 1
        lines = data[: end + 1].decode("utf-8", "replace")
        for row in csv.reader(io.StringIO(lines)):
            if self._cols is None:
                self._cols = {name: i for i, name in enumerate(row)}
                continue
            try:
                c = self._cols
                t = float(row[c["t_sent"]])
                outcome = row[c["outcome"]]
                ttft = row[c["ttft_ms"]]
            except (KeyError, IndexError, ValueError):
                continue
            if outcome == "aborted":  # the run's own stop, not the service's failure
                continue
            self._rows.append((t, outcome != "ok", float(ttft) if ttft else math.nan))

    def check(self, now_ms: float) -> str | None:
        """A reason to abort, or None."""
        self._read_new()
        while self._rows and self._rows[0][0] < now_ms - self.window_ms:
            self._rows.popleft()
        n = len(self._rows)
        if n < self.abort.min_requests:
            return None
        window = f"the last {self.window_ms / 1000:g}s ({n} attempts)"
        if self.abort.error_rate is not None:
            rate = sum(1 for r in self._rows if r[1]) / n
            if rate > self.abort.error_rate:
                return (
                    f"error rate {rate:.0%} over {window} is above the abort limit "
                    f"{self.abort.error_rate:.0%}"
                )
        ttfts = np.array([r[2] for r in self._rows if not r[1] and r[2] == r[2]])
        for pct, limit in self.abort.ttft_ms.items():
            if ttfts.size == 0:
                break
            value = float(np.percentile(ttfts, float(pct[1:])))
            if value > limit:
                return (
                    f"TTFT {pct} {value / 1000:.2f}s over {window} is above the abort limit "
                    f"{limit / 1000:g}s"
                )
        return None


class FaultDriver:
    """Drive the proxy from the timeline in a thread; `stop()` always clears the proxy."""

    def __init__(
        self,
        control: ChaosControl,
        steps: Sequence[Step],
        journal: Journal,
        clock: Callable[[], float],
        *,
        abort: AbortWatch | None = None,
        on_abort: Callable[[str], None] | None = None,
        poll_s: float = 0.25,
    ) -> None:
        self.control = control
        self.steps = list(steps)
        self.journal = journal
        self.clock = clock
        self.abort = abort
        self.on_abort = on_abort
        self.poll_s = poll_s
        self.abort_reason: str | None = None
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cleared = False
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fault-driver", daemon=True)
        self._thread.start()

    def _now_ms(self) -> float:
        return self.clock() * 1000.0

    def _apply(self, step: Step) -> None:
        t_ms = self._now_ms()  # the moment of the change (a listener closes within it)
        try:
            if step.event == "start":
                self.control.put(step.spec.to_json())
            else:
                self.control.remove(step.spec.id)
        except ChaosControlError as exc:
            self.errors.append(str(exc))
        self.journal.write(fault_event(t_ms, step.event, step.spec, time.time()))

    def _run(self) -> None:
        pending = deque(self.steps)
        while not self._stop.is_set():
            now = self.clock()
            while pending and pending[0].t_s <= now:
                with self._lock:
                    if self._cleared:
                        return
                    self._apply(pending.popleft())
            if self.abort is not None:
                reason = self.abort.check(self._now_ms())
                if reason is not None:
                    self.abort_reason = reason
                    self.journal.write(
                        fault_event(self._now_ms(), "abort", None, time.time(), reason=reason)
                    )
                    self.clear()
                    if self.on_abort is not None:
                        self.on_abort(reason)
                    return
            wait = self.poll_s
            if pending:
                wait = min(wait, max(0.0, pending[0].t_s - self.clock()))
            self._stop.wait(wait)

    def clear(self) -> None:
        """Remove every fault (idempotent) and journal it."""
        with self._lock:
            if self._cleared:
                return
            self._cleared = True
            t_ms = self._now_ms()
            try:
                self.control.reset()
            except ChaosControlError as exc:
                self.errors.append(str(exc))
            self.journal.write(fault_event(t_ms, "clear", None, time.time()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10.0)
        self.clear()
        self.journal.close()


def abort_window_s(abort: Abort, scale: float) -> float:
    """The window compresses with the run, but never below a few seconds of evidence."""
    return max(abort.window_s * scale, min(abort.window_s, MIN_ABORT_WINDOW_S))
