"""The fault journal (`<run>/faults.csv`): every change of the chaos proxy's active fault set.

One row per change, in time order, so a report can shade fault windows and split failures
into injected and organic without replaying the scenario. Columns:

- `t_ms`: time of the change, ms since the run start (same clock as `requests.csv`'s
  `t_sent`), float with 3 decimals.
- `event`: `start` (a fault became active), `end` (it was removed at its planned end),
  `update` (its rate/params changed), `clear` (everything removed at once: end of run,
  abort, Ctrl-C; `fault_id` is empty then), `abort` (the run's abort condition fired;
  `params` holds the reason as `{"reason": "..."}`).
- `fault_id`: the scenario's fault id; the same tag the proxy puts in `x-loadkit-fault`
  and the client copies into the record's `fault` column.
- `kind`: the fault kind (`http_error`, `stall`, `region_outage`, ...).
- `region`, `model`, `workload`, `path`: the selector; empty = any.
- `rate`: probability a selected request is hit, in [0, 1].
- `params`: the kind's parameters as a compact JSON object (ms values, status, ...).
- `upstream`: for a fault behind the target, the `target.upstreams` name it acts on (a
  journal from before this column reads with it empty).
- `t_epoch`: the same moment in Unix seconds (wall clock), so a journal written by a
  proxy started by hand (`loadkit chaos --journal`) can be placed on a run's clock
  (`loadkit report RUN --faults FILE`); empty where unknown.

A window of fault F is the span from its `start` row to the first later `end` or `clear`.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadkit.errors import UserError

FAULT_EVENTS: tuple[str, ...] = ("start", "end", "update", "clear", "abort")
FAULT_COLUMNS: tuple[str, ...] = (
    "t_ms",
    "event",
    "fault_id",
    "kind",
    "region",
    "model",
    "workload",
    "path",
    "rate",
    "params",
    "upstream",
    "t_epoch",
)
FAULTS_HEADER_LINE = ",".join(FAULT_COLUMNS) + "\n"


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """One journaled change of the active fault set."""

    t_ms: float
    event: str
    fault_id: str = ""
    kind: str = ""
    region: str = ""
    model: str = ""
    workload: str = ""
    path: str = ""
    rate: float = math.nan
    params: Mapping[str, Any] = field(default_factory=dict)
    upstream: str = ""
    t_epoch: float = math.nan

    def row(self) -> list[str]:
        rate = "" if self.rate != self.rate else f"{self.rate:.6g}"
        return [
            f"{self.t_ms:.3f}",
            self.event,
            self.fault_id,
            self.kind,
            self.region,
            self.model,
            self.workload,
            self.path,
            rate,
            json.dumps(dict(self.params), separators=(",", ":"), sort_keys=True),
            self.upstream,
            "" if self.t_epoch != self.t_epoch else f"{self.t_epoch:.6f}",
        ]


def write_fault_events(path: Path, events: Iterable[FaultEvent]) -> None:
    """Write a whole journal (header included)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(FAULT_COLUMNS)
        for ev in events:
            w.writerow(ev.row())


def read_fault_events(path: Path) -> list[FaultEvent]:
    """Read a journal back; an absent file is an empty journal (a run without faults).

    A malformed journal raises `UserError` naming the file, the line and the column.
    """
    if not path.exists():
        return []
    out: list[FaultEvent] = []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in FAULT_COLUMNS[:10] if c not in (reader.fieldnames or ())]
        if missing:
            raise UserError(f"{path}:1: not a fault journal (missing columns {', '.join(missing)})")
        for rec in reader:
            out.append(_event_of(path, reader.line_num, rec))
    return out


def _event_of(path: Path, line: int, rec: Mapping[str, str | None]) -> FaultEvent:
    column = "t_ms"
    try:
        t_ms = float(rec["t_ms"] or "nan")
        column = "event"
        event = rec["event"] or ""
        if event not in FAULT_EVENTS:
            raise ValueError(f"expected one of {', '.join(FAULT_EVENTS)}, got {event!r}")
        column = "rate"
        rate = float(rec["rate"]) if rec["rate"] else math.nan
        column = "params"
        params = json.loads(rec["params"]) if rec["params"] else {}
        if not isinstance(params, dict):
            raise ValueError("expected a JSON object")
        column = "t_epoch"
        t_epoch = float(rec["t_epoch"]) if rec.get("t_epoch") else math.nan
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}:{line}: {column}: {exc}") from None
    return FaultEvent(
        t_ms=t_ms,
        event=event,
        fault_id=rec["fault_id"] or "",
        kind=rec["kind"] or "",
        region=rec["region"] or "",
        model=rec["model"] or "",
        workload=rec["workload"] or "",
        path=rec["path"] or "",
        rate=rate,
        params=params,
        upstream=rec.get("upstream") or "",
        t_epoch=t_epoch,
    )


def fault_windows(events: Iterable[FaultEvent]) -> list[tuple[str, str, float, float]]:
    """(fault_id, kind, start_ms, end_ms) per window; a window never closed ends at +inf."""
    open_: dict[str, tuple[str, float]] = {}
    out: list[tuple[str, str, float, float]] = []
    for ev in events:
        if ev.event == "start":
            open_.setdefault(ev.fault_id, (ev.kind, ev.t_ms))
        elif ev.event == "end" and ev.fault_id in open_:
            kind, t0 = open_.pop(ev.fault_id)
            out.append((ev.fault_id, kind, t0, ev.t_ms))
        elif ev.event == "clear":
            for fid, (kind, t0) in open_.items():
                out.append((fid, kind, t0, ev.t_ms))
            open_.clear()
    for fid, (kind, t0) in open_.items():
        out.append((fid, kind, t0, math.inf))
    return sorted(out, key=lambda w: (w[2], w[0]))


# The proxy's hit journal (`<run>/fault_hits.csv`): one row per request a fault touched,
# with the attempt key the client sent (`x-loadkit-attempt`), so analysis can attribute a
# fault even when a gateway in between drops or renames the proxy's `x-loadkit-fault` tag.
HIT_COLUMNS: tuple[str, ...] = ("t_ms", "t_epoch", "fault_id", "kind", "attempt", "upstream")
HITS_HEADER_LINE = ",".join(HIT_COLUMNS) + "\n"
ATTEMPT_HEADER = "x-loadkit-attempt"


def attempt_key(request_id: str, attempt: int) -> str:
    """What the client sends in `x-loadkit-attempt` and the hit journal keeps."""
    return f"{request_id}/{attempt}"


@dataclass(frozen=True, slots=True)
class FaultHit:
    """One request a fault touched, as the proxy saw it."""

    t_ms: float
    t_epoch: float
    fault_id: str
    kind: str
    attempt: str  # attempt_key(), empty when the request carried none
    upstream: str = ""  # the upstream listener it arrived on, if any

    def line(self) -> str:
        cells = (
            f"{self.t_ms:.3f}",
            f"{self.t_epoch:.6f}",
            self.fault_id,
            self.kind,
            self.attempt,
            self.upstream,
        )
        return ",".join(_csv_cell(c) for c in cells) + "\n"


def _csv_cell(text: str) -> str:
    if any(ch in text for ch in ',"\r\n'):
        return '"' + text.replace('"', '""').replace("\r", " ").replace("\n", " ") + '"'
    return text


def read_fault_hits(path: Path) -> list[FaultHit]:
    """The hit journal; absent = no hits. A row cut short by a crash is skipped."""
    if not path.exists():
        return []
    out: list[FaultHit] = []
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return []
        if tuple(header) != HIT_COLUMNS:
            raise UserError(f"{path}:1: not a fault hit journal (expected {HITS_HEADER_LINE.strip()})")
        for row in reader:
            if len(row) != len(HIT_COLUMNS):
                continue
            try:
                out.append(FaultHit(float(row[0]), float(row[1]), *row[2:]))
            except ValueError:
                continue
    return out
