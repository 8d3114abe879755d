"""End to end as a new user would: `loadkit run scenarios/quickstart.yaml` (closed loop, mock).

Compressed with `--duration` to keep the suite fast; the run folder lands in the default
place (results/<scenario>-<timestamp> under the working directory).
"""

from __future__ import annotations

import csv
import json

from loadkit.results.reader import read_records
from loadkit.results.schema import COLUMNS
from tests.run_helpers import REPO, run_cli

QUICKSTART = REPO / "scenarios" / "quickstart.yaml"


def test_quickstart_end_to_end(quickstart_run) -> None:
    """The session's quickstart run (tests/e2e/conftest.py; test_report_e2e.py reports it):
    one folder under results/ of its working directory."""
    proc, run = quickstart_run.proc, quickstart_run.out
    assert run.parent.name == "results" and run.name.startswith("quickstart-")
    for name in (
        "requests.csv",
        "summary.json",
        "environment.json",
        "scenario.yaml",
        "locust.html",
        "locust_stats.csv",
        "locust_stats_history.csv",
    ):
        assert (run / name).is_file(), name
    with open(run / "requests.csv", newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    rec = read_records(run / "requests.csv")
    assert len(rec) >= 5
    assert set(rec["outcome"].tolist()) == {"ok"}
    assert len(set(rec["run_id"].tolist())) == 1
    assert set(rec["tokens_source"].tolist()) == {"server"}
    assert (rec["cost_usd"] > 0).all()
    s = json.loads((run / "summary.json").read_text())
    assert s["scenario"] == "quickstart" and s["stop_reason"] == "completed"
    assert s["attempts"] == len(rec) and not s["open_loop"]
    assert s["ttft_ms"]["p50"] > 0 and s["e2e_ms"]["p99"] >= s["e2e_ms"]["p50"]
    assert s["slo"]["breached"] == []
    env = json.loads((run / "environment.json").read_text())
    assert env["seed"] == 7 and env["locust"] and env["python"] and env["loadkit"]
    assert env["time_scale"] == 8 / 30
    assert "name: quickstart" in (run / "scenario.yaml").read_text()
    # the console: progress, then the summary table
    out = proc.stdout
    assert "s of 8s" in out and "users" in out
    for label in ("TTFT", "ITL", "E2E", "req/s", "output tokens/s", "error rate", "cost $"):
        assert label in out, label


def test_users_override_caps_the_peak(tmp_path) -> None:
    out = tmp_path / "run"
    proc = run_cli("run", str(QUICKSTART), "--duration", "5s", "--users", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out / "locust_stats_history.csv", newline="") as f:
        counts = [int(row["User Count"]) for row in csv.DictReader(f)]
    assert max(counts) == 2
    env = json.loads((out / "environment.json").read_text())
    assert env["users_override"] == 2
