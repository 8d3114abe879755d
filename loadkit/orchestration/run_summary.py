"""The end of `loadkit run`: read the records, write summary.json, print, report, exit code.

Reads requests.csv (only the records), adds the run's stop reason, workers, chaos windows
and the prompt-size sections (calibration, planned against served, a Mooncake replay's
prefix-cache shares), writes summary.json, prints the summary table, writes charts and
report.html, and returns the exit code (1 on an SLO breach with `--fail-on-slo`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from loadkit.errors import UserError
from loadkit.results import run_folder as rf

if TYPE_CHECKING:
    from loadkit.orchestration.run_options import RunOptions


@dataclass(frozen=True)
class RunResult:
    """What one run produced: for callers that run scenarios programmatically (capacity)."""

    exit_code: int
    folder: Path
    stop_reason: str
    summary: dict[str, Any] | None  # summary.json's content; None if nothing was recorded


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class NoSpace(UserError):
    """A full disk: one line, exit 1 (the run's records are whole; the user frees space)."""

    exit_code = 1


def csv_rows(path: Path) -> int:
    """Rows of a requests.csv (lines after the header); 0 if there is none."""
    n = 0
    with contextlib.suppress(OSError), path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            n += block.count(b"\n")
    return max(n - 1, 0)


def no_space(folder: rf.RunFolder, exc: OSError, ended: Mapping[str, Any] | None = None) -> NoSpace:
    """What could not be written, what the records hold, and how to finish once there is room."""
    what = exc.filename or "a file in the run folder"
    rows = csv_rows(folder.requests_csv)
    lost = int((ended or {}).get("rows_lost") or 0)
    held = (
        f"{folder.requests_csv} holds the run's first {rows} rows ({lost} later ones were lost)"
        if lost
        else f"{folder.requests_csv} is complete ({rows} rows)"
    )
    return NoSpace(
        f"no space left on device: could not write {what}; {held}; run "
        f"`loadkit report {folder.path}` once there is space"
    )


def finish(
    folder: rf.RunFolder,
    scenario: Any,
    opts: RunOptions,
    locust_rc: int,
    interrupted: bool,
    events: list[dict[str, Any]],
    started: str,
    wall_s: float,
    out: IO[str],
    run_id: str = "",
    abort_reason: str | None = None,
    prompt_salt: str = "",
) -> RunResult:
    ended = next((e for e in reversed(events) if e.get("event") == "ended"), {})
    try:
        result = _finish(
            folder, scenario, opts, locust_rc, interrupted, events, started, wall_s, out,
            run_id, abort_reason, prompt_salt,
        )  # fmt: skip
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise no_space(folder, exc, ended) from None
    if ended.get("write_error"):  # the disk filled mid-run: the records stop early
        out.write(
            f"error: could not write every record ({ended['write_error']}): "
            f"{folder.requests_csv} holds the run's first {ended.get('rows', 0)} rows, "
            f"{ended.get('rows_lost', 0)} later ones were lost; summary and report cover "
            "those rows\n"
        )
        return dataclasses.replace(result, exit_code=max(result.exit_code, 1))
    return result


def _finish(
    folder: rf.RunFolder,
    scenario: Any,
    opts: RunOptions,
    locust_rc: int,
    interrupted: bool,
    events: list[dict[str, Any]],
    started: str,
    wall_s: float,
    out: IO[str],
    run_id: str = "",
    abort_reason: str | None = None,
    prompt_salt: str = "",
) -> RunResult:
    from loadkit.analysis.hits import attribute
    from loadkit.analysis.served import served_lines
    from loadkit.analysis.summary import format_table, summarize
    from loadkit.results.faults_schema import read_fault_events, read_fault_hits
    from loadkit.results.reader import read_records

    ended = next((e for e in reversed(events) if e.get("event") == "ended"), {})
    stop = next((e for e in events if e.get("event") == "stop"), {})
    if interrupted and any(e.get("event") == "timeline_done" for e in events):
        interrupted = False  # --web: Ctrl-C after the timeline is the normal way to finish
    reason = "interrupted" if interrupted else stop.get("reason") or ended.get("reason")
    if not reason:
        reason = "completed" if locust_rc == 0 else f"locust exited with code {locust_rc}"
    if abort_reason:  # the drill's abort condition stopped the run (SIGTERM to Locust)
        reason = f"aborted: {abort_reason}"
    elapsed_s = float(ended.get("elapsed_s") or wall_s)
    if not folder.requests_csv.exists():
        out.write(f"no records were written; see {folder.locust_log}\n")
        _tail(folder.locust_log, out)
        return RunResult(2 if locust_rc else 1, folder.path, reason, None)
    records = read_records(folder.requests_csv)
    fault_events = read_fault_events(folder.faults_csv)
    kinds = {e.fault_id: e.kind for e in fault_events if e.event == "start"}
    hits_csv = folder.fault_hits_csv
    cols, joined = attribute(records.columns, read_fault_hits(hits_csv), kinds, hits_csv.exists())
    summary = summarize(cols, slo=scenario.slo)
    started_event = next((e for e in events if e.get("event") == "started"), {})
    doc = {
        "run_id": ended.get("run_id") or run_id,
        "scenario": scenario.name,
        "started_at": started,
        "ended_at": rf.utc_now_iso(),
        "stop_reason": reason,
        "locust_exit_code": locust_rc,
        "elapsed_s": round(elapsed_s, 3),
        "records_truncated": bool(records.truncated),
        # the disk filled mid-run: records after the first `attempts` could not be written
        **(
            {"records_lost": ended.get("rows_lost", 0), "records_error": ended["write_error"]}
            if ended.get("write_error")
            else {}
        ),
        "t0_epoch": started_event.get("t0_epoch"),
        "seed": scenario.seed,
        "prompt_cache": scenario.prompt_cache,
        "prompt_salt": prompt_salt,
        **summary,
    }
    if joined.hits:
        doc["fault_hits"] = joined.to_json()
    if ended.get("workers") is not None:  # a distributed run: each worker, and who went missing
        doc["workers"] = ended["workers"]
    faults_csv = folder.faults_csv
    if faults_csv.exists():
        from loadkit.analysis.drill import drill_summary

        doc["chaos"] = drill_summary(cols, fault_events, scenario.slo.error_rate)
    doc.update(size_sections(folder, cols, scenario, out))
    if summary.get("open_loop"):
        doc["offered"] = offered_section(folder, cols, scenario)
    rf.write_json(folder.summary_json, doc)
    out.write("\n" + format_table(summary) + "\n")
    if doc.get("offered"):
        from loadkit.analysis.offered import offered_lines

        out.write("".join(f"{line}\n" for line in offered_lines(doc["offered"])))
    out.write("".join(f"{line}\n" for line in served_lines(doc)))
    if joined.joined or joined.truncated:
        out.write(
            f"fault journal: {joined.truncated} answers that looked whole were cut upstream "
            f"(counted truncated), {joined.retagged} failures attributed though their tag did "
            f"not come back, {joined.absorbed} faulted requests the service in between "
            "absorbed (retried or failed over)\n"
        )
    if doc.get("workers"):
        from loadkit.orchestration.run_distributed import worker_lines

        out.write("".join(f"{line}\n" for line in worker_lines(doc["workers"])))
    out.write(f"stopped: {reason}\n" if reason != "completed" else "")
    if opts.report:
        _write_report(folder, out)
    out.write(f"run folder: {folder.path}\n")
    out.flush()
    if locust_rc not in (0,) and not interrupted:
        _tail(folder.locust_log, out)
        code = 2 if summary["attempts"] == 0 else 1
    elif abort_reason:
        code = 1
    elif opts.fail_on_slo and summary.get("slo", {}).get("breached"):
        out.write(f"SLO breached: {', '.join(summary['slo']['breached'])}\n")
        code = 1
    else:
        code = 130 if interrupted else 0
    return RunResult(code, folder.path, reason, doc)


def _write_report(folder: rf.RunFolder, out: IO[str]) -> None:
    """charts/*.png and report.html; a failed report never costs the run its exit code."""
    import traceback

    from loadkit.report.build import build_report, report_line

    out.flush()
    try:
        result = build_report(folder.path)
    except UserError as exc:
        out.write(f"report: not written ({exc})\n")
        return
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise  # the run's end says it, in one line
        traceback.print_exc()
        out.write(f"report: failed; retry with: loadkit report {folder.path}\n")
        return
    except Exception:  # a bug in the report: show it, keep the run's own result
        traceback.print_exc()
        out.write(f"report: failed; retry with: loadkit report {folder.path}\n")
        return
    out.write(report_line(result) + "\n")


def _tail(path: Path, out: IO[str], n: int = 15) -> None:
    with contextlib.suppress(OSError):
        lines = path.read_text(errors="replace").splitlines()[-n:]
        out.write("".join(f"  | {x}\n" for x in lines))


# -- in summary.json ---------------------------------------------------------------------------


def size_sections(
    folder: rf.RunFolder, cols: Mapping[str, np.ndarray], scenario: Any, out: IO[str]
) -> dict[str, Any]:
    """summary.json's `calibration`, `planned_vs_served` and (Mooncake replay)
    `prefix_replay` sections; prints the planned-vs-served warnings."""
    from loadkit.analysis.sizes import planned_vs_served
    from loadkit.orchestration import calibrate

    cal = calibrate.read(folder.path)
    doc: dict[str, Any] = {}
    if cal is not None:
        doc["calibration"] = {"line": calibrate.describe(cal)} | {
            k: cal[k] for k in ("endpoint", "sizing", "fits", "notes") if k in cal
        }
    pvs = planned_vs_served(cols, calibrate.overheads(cal))
    doc["planned_vs_served"] = pvs
    for line in pvs["warnings"]:
        out.write(f"warning: {line}\n")
    prefix = prefix_replay(folder, cols, scenario)
    if prefix is not None:
        doc["prefix_replay"] = prefix
    return doc


def offered_section(
    folder: rf.RunFolder, cols: Mapping[str, np.ndarray], scenario: Any
) -> dict[str, Any]:
    """Open loop: planned, sent and served arrivals (`loadkit.analysis.offered`)."""
    from loadkit.analysis.offered import offered
    from loadkit.analysis.requests import logical

    try:
        schedule = json.loads(folder.schedule_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        schedule = None
    max_lag = getattr(scenario.load, "max_schedule_lag_s", None)
    return offered(cols, logical(cols), schedule, max_lag)


def prefix_replay(
    folder: rf.RunFolder, cols: Mapping[str, np.ndarray], scenario: Any
) -> dict[str, Any] | None:
    """A Mooncake replay's prefix-cache shares (`loadkit.analysis.sizes.prefix_replay`) over
    the trace rows as this run replayed them. None for any other run."""
    from loadkit.analysis import sizes
    from loadkit.scenario.model import TraceLoad
    from loadkit.traffic.timeline import open_plan

    if not isinstance(scenario.load, TraceLoad) or scenario.load.format != "mooncake":
        return None
    try:
        scale = float(json.loads(folder.run_config.read_text())["time_scale"])
    except (OSError, ValueError, KeyError, TypeError):
        scale = 1.0
    sp = open_plan(scenario, scale).sessions[0]
    if sp.hash_ids is None:
        return None
    return sizes.prefix_replay(cols, sp.hash_ids, sp.prompt_tokens)
