"""`loadkit report RUN --faults FILE`: a journal from a hand-driven drill, on the run's clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadkit.cli import main as cli_main
from loadkit.results.faults_schema import FaultEvent, read_fault_events, write_fault_events
from loadkit.results.schema import HEADER_LINE, to_csv_line
from tests.records import FAILED, record

T0 = 1_800_000_000.0  # the run's start, Unix seconds


def _run(folder: Path, t0_epoch: float | None = T0) -> Path:
    folder.mkdir()
    recs = [record(request_id=f"q{i}", t_sent=i * 100.0) for i in range(100)]
    recs += [
        record(**{**FAILED, "request_id": f"f{i}", "t_sent": 4_000.0 + i * 50, "fault": ""})
        for i in range(10)
    ]
    (folder / "requests.csv").write_text(HEADER_LINE + "".join(map(to_csv_line, recs)))
    if t0_epoch is not None:
        (folder / "summary.json").write_text(json.dumps({"t0_epoch": t0_epoch}))
    return folder


def _journal(path: Path, proxy_start: float | None) -> Path:
    """A proxy started 30 s before the run: its own clock says 34 s for the run's 4 s."""

    def at(run_s: float) -> dict:
        if proxy_start is None:
            return {"t_ms": run_s * 1000}
        return {"t_ms": (T0 + run_s - proxy_start) * 1000, "t_epoch": T0 + run_s}

    write_fault_events(
        path,
        [
            FaultEvent(**at(4.0), event="start", fault_id="by-hand", kind="http_error"),
            FaultEvent(**at(5.0), event="end", fault_id="by-hand", kind="http_error"),
        ],
    )
    return path


def test_a_hand_driven_journal_is_placed_on_the_run_clock(tmp_path, capsys):
    run = _run(tmp_path / "run")
    journal = _journal(tmp_path / "drill.csv", proxy_start=T0 - 30.0)
    assert cli_main(["report", str(run), "--faults", str(journal)]) == 0
    out = capsys.readouterr().out
    assert "imported 2 fault events (1 windows)" in out and "wall-clock" in out
    events = read_fault_events(run / "faults.csv")
    assert [(e.event, round(e.t_ms)) for e in events] == [("start", 4000), ("end", 5000)]
    summary = json.loads((run / "summary.json").read_text())
    (window,) = summary["faults"]
    assert window["fault_id"] == "by-hand" and window["start_s"] == 4.0
    # importing the same journal again adds nothing
    assert cli_main(["report", str(run), "--faults", str(journal)]) == 0
    assert "imported 0 fault events" in capsys.readouterr().out


def test_a_journal_without_wall_clock_times_is_taken_as_the_runs_own(tmp_path, capsys):
    run = _run(tmp_path / "run", t0_epoch=None)
    assert cli_main(["report", str(run), "--faults", str(_journal(tmp_path / "j.csv", None))]) == 0
    assert "taken as the run's own" in capsys.readouterr().out
    assert [round(e.t_ms) for e in read_fault_events(run / "faults.csv")] == [4000, 5000]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("t_ms,event\n", "j.csv:1: not a fault journal (missing columns fault_id"),
        (
            "t_ms,event,fault_id,kind,region,model,workload,path,rate,params\n"
            "12.5,begin,x,latency,,,,,,\n",
            "j.csv:2: event: expected one of start, end, update, clear, abort, got 'begin'",
        ),
        (
            "t_ms,event,fault_id,kind,region,model,workload,path,rate,params\n"
            "soon,start,x,latency,,,,,,\n",
            "j.csv:2: t_ms: could not convert string to float: 'soon'",
        ),
    ],
)
def test_a_bad_journal_is_one_line_naming_file_line_and_column(tmp_path, capsys, content, expected):
    run = _run(tmp_path / "run")
    (tmp_path / "j.csv").write_text(content)
    assert cli_main(["report", str(run), "--faults", str(tmp_path / "j.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err
    assert not (run / "faults.csv").exists()


def test_wall_clock_times_need_the_runs_start(tmp_path, capsys):
    run = _run(tmp_path / "run", t0_epoch=None)
    journal = _journal(tmp_path / "j.csv", proxy_start=T0)
    assert cli_main(["report", str(run), "--faults", str(journal)]) == 2
    assert "records no t0_epoch" in capsys.readouterr().err
