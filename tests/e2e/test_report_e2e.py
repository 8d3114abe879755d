"""End to end from real runs against the mock: `loadkit run`, then `loadkit report RUN_DIR`."""

from __future__ import annotations

import json
import shutil

import pytest

from loadkit.results.reader import read_records
from tests.run_helpers import run_cli, scenario


def _report(run_dir):
    proc = run_cli("report", str(run_dir), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"report: {run_dir / 'report.html'}" in proc.stdout
    assert "readiness: " in proc.stdout
    return json.loads((run_dir / "summary.json").read_text())


def test_quickstart_run_then_report(tmp_path, quickstart_run) -> None:
    proc = quickstart_run.proc
    # `loadkit run` itself ends with the report
    ran = quickstart_run.out
    # (run in its own working directory: the folder is printed relative to it)
    assert f"report: results/{ran.name}/report.html\n" in proc.stdout
    assert "readiness: " in proc.stdout
    assert (ran / "report.html").is_file() and (ran / "charts" / "cost.png").is_file()
    out = tmp_path / "qs"  # `loadkit report` rewrites the folder: a copy, the session's stays
    shutil.copytree(ran, out)
    before = json.loads((out / "summary.json").read_text())
    assert "verdict" in before and "goodput" in before
    doc = _report(out)  # and `loadkit report` again gives the same analysis
    # what `loadkit run` wrote is kept; the report's analysis is added beside it
    for key in ("scenario", "stop_reason", "started_at", "run_id", "elapsed_s"):
        assert doc[key] == before[key], key
    assert doc["requests"] == before["requests"] and doc["ttft_ms"] == before["ttft_ms"]
    assert doc["verdict"] == before["verdict"] and doc["cost"] == before["cost"]
    rec = read_records(out / "requests.csv")
    assert doc["goodput"]["good_requests"] <= before["requests_ok"] <= len(rec)
    assert doc["cost"]["total_usd"] == pytest.approx(float(rec["cost_usd"].sum()), rel=1e-6)
    assert doc["cost"]["priced"] and doc["cost"]["per_ok_request_usd"] > 0
    assert doc["cost"]["monthly_projection"]["monthly_usd"] > 0
    assert [r["region"] for r in doc["breakdown"]["region"]] == ["local"]
    html = (out / "report.html").read_text()
    assert "quickstart" in html and html.count("data:image/png;base64,") == 8
    assert sorted(p.name for p in (out / "charts").glob("*.png")) == sorted(
        f"{c}.png"
        for c in (
            "latency_over_time",
            "latency_vs_load",
            "latency_cdf",
            "failures",
            "throughput",
            "cost",
            "by_region",
            "by_workload",
        )
    )
    checks = {i["check"]: i["status"] for i in doc["verdict"]["items"]}
    assert checks["recovery after failures"] == "not tested"  # the quickstart injects nothing
    assert checks["region local"] in ("go", "no-go")


def test_open_loop_two_region_run_reports_lag_and_regions(tmp_path) -> None:
    path = scenario(
        tmp_path,
        name="two-regions",
        regions=[{"name": "na", "share": "70%"}, {"name": "eu", "share": "30%"}],
        load={"type": "open", "phases": [{"rate": "15/s", "for": "3s"}]},
        slo={"ttft": {"p95": "2s"}, "error_rate": "5%"},
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = _report(out)
    assert doc["open_loop"] is True
    assert (out / "charts" / "schedule_lag.png").stat().st_size > 10_000
    assert [r["region"] for r in doc["breakdown"]["region"]] == ["eu", "na"]
    assert sum(r["requests"] for r in doc["breakdown"]["region"]) == doc["requests"]
    regions = [i["check"] for i in doc["verdict"]["items"] if i["area"] == "customer impact"]
    assert regions == ["region eu", "region na"]


def test_drill_report_shows_fault_windows_injected_failures_and_recovery(drill_run) -> None:
    """The drill of tests/e2e/conftest.py (the same run test_chaos_run.py reads): na down
    2-5 s, then a 50% 503 storm 5-7 s, of 9 s."""
    proc, out = drill_run.proc, drill_run.out
    assert f"report: {out / 'report.html'}" in proc.stdout
    doc = json.loads((out / "summary.json").read_text())
    assert "chaos" in doc  # the drill's own section is kept beside the report's
    faults = {f["fault_id"]: f for f in doc["faults"]}
    assert set(faults) == {"na-down", "storm"}
    assert faults["na-down"]["start_s"] == pytest.approx(2.0, abs=0.5)
    # the outage leaves no tag (refused connections): its failures are inferred as injected
    assert faults["na-down"]["failed_attempts_injected"] > 0
    assert faults["na-down"]["failover_requests"] > 0
    assert faults["storm"]["failed_attempts_injected"] > 0
    assert doc["failures"]["injected"] > doc["failures"]["organic"]
    assert doc["failures"]["injected_untagged"] > 0
    # nothing fails after the storm (test_chaos_run.py checks the rows): both recover, the
    # storm at once, the outage only once the storm that followed it is over
    assert faults["storm"]["recovered"] is True, faults["storm"]
    assert faults["storm"]["recovery_s"] < 1.0
    assert faults["na-down"]["recovered"] is True, faults["na-down"]
    assert 1.5 <= faults["na-down"]["recovery_s"] <= 3.0
    assert "another fault started before that" in faults["na-down"]["recovery_note"]
    checks = {i["check"]: i["status"] for i in doc["verdict"]["items"]}
    assert checks["recovery from na-down (region_outage)"] == "go"
    assert checks["recovery from storm (http_error)"] == "go"
    assert "na-down" in (out / "report.html").read_text()
