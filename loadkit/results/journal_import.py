"""Fault windows from outside a run: a journal that `loadkit chaos --journal` wrote while a
drill was driven by hand, placed on a run's clock and merged into its `faults.csv`.

A run's records are timed from its start; a hand-started proxy's journal from the proxy's
own start. Both carry the wall clock (`t_epoch` on journal rows, `t0_epoch` in the run's
summary.json and environment.json), which places one on the other. A journal without wall
clock times (one copied from another run folder) is taken as already on the run's clock.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

from loadkit.errors import UserError
from loadkit.results.faults_schema import FaultEvent, read_fault_events, write_fault_events
from loadkit.results.run_folder import RunFolder


def run_t0_epoch(folder: RunFolder) -> float | None:
    """The run's start on the wall clock, from summary.json or environment.json."""
    for path in (folder.summary_json, folder.environment_json):
        try:
            value = json.loads(path.read_text(encoding="utf-8")).get("t0_epoch")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
            return float(value)
    return None


def import_journal(folder: RunFolder, source: Path) -> str:
    """Merge `source`'s events into the run's faults.csv; returns one line saying what."""
    if not source.exists():
        raise UserError(f"{source}: no such fault journal")
    events = read_fault_events(source)
    if not events:
        raise UserError(f"{source}:1: the journal holds no events")
    t0 = run_t0_epoch(folder)
    timed = [e for e in events if math.isfinite(e.t_epoch)]
    if timed and t0 is not None:
        if len(timed) != len(events):
            raise UserError(
                f"{source}: some rows have t_epoch and some do not; cannot place them on "
                "one clock"
            )
        placed = [replace(e, t_ms=(e.t_epoch - t0) * 1000.0) for e in events]
        how = "placed on the run's clock by wall-clock time"
    elif timed:
        raise UserError(
            f"{folder.path}: the run records no t0_epoch (a run from before loadkit wrote it), "
            f"so {source}'s wall-clock times cannot be placed on its clock"
        )
    else:
        placed = events
        how = "its times taken as the run's own (no wall-clock times in it)"
    target = folder.faults_csv
    existing = read_fault_events(target)
    seen = {(e.t_ms, e.event, e.fault_id) for e in existing}
    added = [e for e in placed if (e.t_ms, e.event, e.fault_id) not in seen]
    merged = sorted(existing + added, key=_order)
    tmp = target.with_suffix(".csv.tmp")
    write_fault_events(tmp, merged)
    os.replace(tmp, target)
    windows = sum(1 for e in added if e.event == "start")
    return (
        f"imported {len(added)} fault events ({windows} windows) from {source} into {target}, "
        f"{how}"
    )


def _order(e: FaultEvent) -> tuple[float, int, str]:
    return (e.t_ms, 0 if e.event in ("end", "clear") else 1, e.fault_id)
