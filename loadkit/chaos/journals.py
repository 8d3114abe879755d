"""The proxy's own journals, for drills driven from outside `loadkit run`.

- `HitJournal` (`--hits FILE`): one row per request a fault touched, with the attempt key
  the client sent, so analysis can join faults to records through a gateway.
- `FaultJournalFile` (`loadkit chaos --journal FILE`): every change of the fault set in
  faults.csv's format, with wall-clock times, so `loadkit report RUN --faults FILE` can
  place a hand-driven drill on a run's clock.

Both append whole lines and flush each, so a killed proxy leaves what happened.
"""

from __future__ import annotations

import csv
import io
import math
import threading
import time
from pathlib import Path
from typing import Any

from loadkit.chaos.faults import FaultSpec
from loadkit.results.faults_schema import (
    FAULTS_HEADER_LINE,
    HITS_HEADER_LINE,
    FaultEvent,
    FaultHit,
)


def fault_event(
    t_ms: float, event: str, spec: FaultSpec | None, t_epoch: float = math.nan, **params: Any
) -> FaultEvent:
    """A journal row for a change of the fault set (`spec` None: `clear` or `abort`)."""
    if spec is None:
        return FaultEvent(t_ms=t_ms, event=event, params=params, t_epoch=t_epoch)
    w = spec.where
    return FaultEvent(
        t_ms=t_ms,
        event=event,
        fault_id=spec.id,
        kind=spec.kind,
        region=w.region or "",
        model=w.model or "",
        workload=w.workload or "",
        path=w.path or "",
        rate=spec.rate,
        params=dict(spec.params),
        upstream=w.upstream or "",
        t_epoch=t_epoch,
    )


class _LineFile:
    def __init__(self, path: Path, header: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or path.stat().st_size == 0
        self._fh = path.open("a", newline="", encoding="utf-8")
        if fresh:
            self._fh.write(header)
            self._fh.flush()
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.write(line)
                self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class HitJournal(_LineFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, HITS_HEADER_LINE)

    def write(self, t_ms: float, spec: FaultSpec, attempt: str, upstream: str) -> None:
        self._write(FaultHit(t_ms, time.time(), spec.id, spec.kind, attempt, upstream).line())


class FaultJournalFile(_LineFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, FAULTS_HEADER_LINE)

    def write(self, t_ms: float, t_epoch: float, event: str, spec: FaultSpec | None) -> None:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(fault_event(t_ms, event, spec, t_epoch).row())
        self._write(out.getvalue())
