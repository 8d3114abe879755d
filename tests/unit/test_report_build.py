"""`loadkit report` on synthetic run folders: files, self-contained HTML, summary.json kept
and extended, damaged and truncated requests.csv, CLI exit codes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from loadkit.cli import main
from loadkit.errors import UserError
from loadkit.report.build import build_report
from loadkit.report.synthetic import SynthFault, SynthRun, write_run
from loadkit.results.reader import read_records
from loadkit.results.schema import COLUMNS

SPEC = SynthRun(
    requests=3000,
    duration_s=300.0,
    faults=(
        SynthFault("na-outage", "region_outage", "na", 100.0, 160.0),
        SynthFault("storm", "http_error", "", 200.0, 215.0, 0.4),
    ),
    slow_after_fault_s=20.0,
)
CHARTS = {
    "latency_over_time",
    "latency_vs_load",
    "latency_cdf",
    "failures",
    "throughput",
    "cost",
    "by_region",
    "by_workload",
    "offered_served",
    "schedule_lag",
}


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(tmp_path_factory.mktemp("synth") / "run", SPEC)


@pytest.fixture(scope="module")
def built(synth_run: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("built") / "run"
    shutil.copytree(synth_run, folder)
    (folder / "summary.json").write_text(json.dumps({"run_id": "abc", "stop_reason": "completed"}))
    return folder, build_report(folder)


def test_report_writes_charts_html_and_summary(built):
    folder, result = built
    assert {p.stem for p in result.charts} == CHARTS
    for p in result.charts:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    doc = json.loads((folder / "summary.json").read_text())
    assert doc["run_id"] == "abc" and doc["stop_reason"] == "completed"  # kept
    assert doc["requests"] == SPEC.requests  # summarize()'s keys
    for key in ("goodput", "cost", "breakdown", "faults", "verdict", "report"):
        assert key in doc
    assert [f["fault_id"] for f in doc["faults"]] == ["na-outage", "storm"]
    assert doc["report"]["charts"] == [f"charts/{p.name}" for p in result.charts]


def test_html_is_self_contained(built):
    _, result = built
    html = result.html.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(CHARTS)
    assert not re.search(r"""(src|href)=["'](https?:|//|/)""", html)  # nothing fetched
    assert "<script" not in html
    assert "Readiness review" in html and "na-outage" in html


def test_verdict_has_evidence_per_area(built):
    _, result = built
    v = result.summary["verdict"]
    areas = {i["area"] for i in v["items"]}
    assert areas == {"traffic", "SLO", "resilience", "cost", "customer impact"}
    assert all(i["evidence"] for i in v["items"])
    # open loop without a schedule.json: judged from the records, the planned count unknown
    load = next(i for i in v["items"] if i["check"] == "the service kept up with the planned load")
    assert "the planned count is not in this run folder" in load["evidence"]
    regions = [i["check"] for i in v["items"] if i["area"] == "customer impact"]
    assert regions == ["region eu", "region na"]
    assert v["overall"] == ("no-go" if v["failing"] else "go")
    proj = result.summary["cost"]["monthly_projection"]
    planned = SPEC.requests / SPEC.duration_s
    assert proj["planned_peak_requests_per_s"] == pytest.approx(planned, rel=1e-3)
    assert proj["measured_requests_per_s"] == result.summary["requests_per_s"]


def test_injected_and_organic_failures_are_split(built):
    _, result = built
    f = result.summary["failures"]
    assert f["injected"] > 0 and f["organic"] > 0
    assert f["injected"] + f["organic"] == f["failed_attempts"]
    outage = result.summary["faults"][0]
    assert outage["failover_requests"] > 0 and outage["failover_ok_share"] > 0.9


def test_truncated_last_line_is_reported_and_the_rest_charted(synth_run, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(synth_run, folder)
    with (folder / "requests.csv").open("ab") as fh:
        fh.write(b"synthetic,rX,0,w0,na,chat,rX,0,gpt-4o")  # a writer killed mid-line
    assert main(["report", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "dropped an incomplete last line" in err
    doc = json.loads((folder / "summary.json").read_text())
    assert doc["records_truncated"] is True and doc["requests"] == SPEC.requests


def test_corrupt_lines_give_a_clear_message_and_a_report_of_the_rest(synth_run, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(synth_run, folder)
    lines = (folder / "requests.csv").read_text().splitlines(keepends=True)
    n_rows = len(lines) - 1
    fields = lines[10].split(",")
    fields[13] = "fast"  # ttft_ms
    lines[10] = ",".join(fields)
    lines[20] = "garbage\n"
    (folder / "requests.csv").write_text("".join(lines))
    with pytest.raises(
        UserError, match=rf"requests\.csv:21:2: expected {len(COLUMNS)} fields, got 1"
    ):
        read_records(folder / "requests.csv")  # the fast reader stops at the first bad line
    assert main(["report", str(folder)]) == 1
    out = capsys.readouterr()
    assert "requests.csv:11: ttft_ms: expected a number, got 'fast'" in out.err
    assert "skipped 2 unreadable lines" in out.err
    assert f"requests.csv:21: expected {len(COLUMNS)} fields, got 1" in out.err
    assert "report:" in out.out
    doc = json.loads((folder / "summary.json").read_text())
    assert doc["attempts"] == n_rows - 2 and doc["report"]["damaged_records"] is True
    assert "skipped 2 unreadable lines" in (folder / "report.html").read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no requests.csv"),
        (b"", "empty file"),
        (b"a,b,c\n1,2,3\n", "not a loadkit requests.csv header"),
    ],
)
def test_unreadable_folders_are_user_errors(tmp_path, capsys, content, message):
    folder = tmp_path / "run"
    folder.mkdir()
    if content is not None:
        (folder / "requests.csv").write_bytes(content)
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_a_folder_without_scenario_still_gets_a_report(synth_run, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(synth_run / "requests.csv", folder / "requests.csv")
    result = build_report(folder, window_s=30.0)
    assert any("scenario not available" in n for n in result.notes)
    assert result.summary["window_s"] == 30.0
    assert "slo" not in result.summary
    statuses = {i["check"]: i["status"] for i in result.summary["verdict"]["items"]}
    assert statuses["service level objectives"] == "not tested"
    assert statuses["recovery after failures"] == "not tested"  # no faults.csv


@pytest.mark.charts
def test_header_only_and_all_failed_runs_are_no_go_without_crashing(tmp_path):
    from loadkit.results.schema import HEADER_LINE

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "requests.csv").write_text(HEADER_LINE)
    result = build_report(empty)
    assert result.verdict == "no-go" and result.summary["verdict"]["failing"] == ["requests"]
    assert len(result.charts) == 8  # every chart says "no data" rather than failing
    bad = write_run(tmp_path / "bad", SynthRun(requests=100, duration_s=20.0, organic_fail=1.0))
    result = build_report(bad)
    assert result.summary["requests_ok"] == 0 and result.verdict == "no-go"
    assert "error rate" in result.summary["verdict"]["failing"]


def test_an_aborted_drill_is_no_go(synth_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(synth_run, folder)
    reason = "aborted: error_rate 60% over 30s"
    (folder / "summary.json").write_text(json.dumps({"stop_reason": reason}))
    v = build_report(folder).summary["verdict"]
    assert v["overall"] == "no-go" and "abort condition" in v["failing"]
    assert any(reason in i["evidence"] for i in v["items"])
