"""`loadkit run --processes 2`: one requests.csv from the master, every attempt exactly once."""

from __future__ import annotations

from loadkit.results.reader import read_records
from loadkit.scenario import load_scenario
from loadkit.traffic.timeline import open_plan
from tests.run_helpers import pids_with, run_cli, scenario, summary


def test_two_processes_one_file_every_attempt_once(tmp_path) -> None:
    path = scenario(
        tmp_path,
        "multi",
        load={"type": "open", "process": "constant", "phases": [{"rate": "40/s", "for": "4s"}]},
    )
    planned = len(open_plan(load_scenario(path), 1.0))
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), "--processes", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = sorted(p.name for p in out.glob("requests*.csv"))
    assert files == ["requests.csv"]
    rec = read_records(out / "requests.csv")
    assert not rec.truncated
    ids = rec["request_id"].tolist()
    assert len(ids) == len(set(ids)) == planned == 160  # no attempt lost, none counted twice
    assert set(rec["outcome"].tolist()) == {"ok"}
    assert sorted(set(rec["worker"].tolist())) == ["w0", "w1"]  # both processes sent
    s = summary(out)
    assert s["attempts"] == planned and s["stop_reason"] == "completed"
    # the forked Locust workers are gone with the run
    assert pids_with(str(out)) == []
