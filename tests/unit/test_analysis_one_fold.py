"""One attempt->request fold: run, report, compare and capacity give the same numbers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from loadkit.analysis.summary import summarize
from loadkit.orchestration import capacity as capmod
from loadkit.report.build import build_report
from loadkit.report.compare import read_run
from loadkit.results.reader import read_records
from loadkit.results.schema import HEADER_LINE, NAN, RequestRecord, to_csv_line
from loadkit.scenario.model import Slo
from tests.records import record

BASE = record(
    run_id="r",
    request_id="",
    region="local",
    endpoint="/v1/chat/completions",
    ttft_ms=80.0,
    e2e_ms=300.0,
    itl_p99_ms=12.0,
    itl_max_ms=15.0,
    completion_tokens=20,
    cost_usd=0.0001,
)


def _failed(rec: RequestRecord, **kw: object) -> RequestRecord:
    bad = dict(outcome="http_error", status=503, error="HTTP 503", ttft_ms=NAN, e2e_ms=5.0)
    return replace(rec, **{**bad, **kw})  # type: ignore[arg-type]


def _records() -> list[RequestRecord]:
    recs = []
    for i in range(20):  # one request every 500 ms for 10 s
        recs.append(replace(BASE, request_id=f"q{i}", t_sent=i * 500.0, session_id=f"s{i}"))
    # two requests fail for good (three attempts each)
    for rid in ("q3", "q11"):
        first = next(r for r in recs if r.request_id == rid)
        recs.remove(first)
        recs += [_failed(first, attempt=a, t_sent=first.t_sent + 100.0 * a) for a in range(3)]
    # q19 (sent at 9.5 s) fails once and its retry succeeds at 10.2 s, past the steady window
    q19 = next(r for r in recs if r.request_id == "q19")
    recs.remove(q19)
    recs += [_failed(q19), replace(q19, attempt=1, t_sent=10_200.0)]
    return recs


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    body = "".join(to_csv_line(r) for r in _records())
    (folder / "requests.csv").write_text(HEADER_LINE + body, encoding="utf-8")
    return folder


def test_run_report_compare_and_capacity_count_the_same_requests(run_dir: Path) -> None:
    cols = read_records(run_dir / "requests.csv").columns
    run = summarize(cols)
    assert run["requests"] == 20 and run["requests_ok"] == 18
    assert run["error_rate"] == pytest.approx(0.1)
    report = build_report(run_dir).summary
    compare = read_run(run_dir, "run")
    step = capmod.measure_step(
        run_dir, Slo(error_rate=0.5), level=1, index=1, warmup_s=0.0, end_s=10.0
    )
    rates = {
        "run": run["error_rate"],
        "report": report["error_rate"],
        "compare": compare.error_rate,
        "capacity": step.error_rate,
    }
    assert rates == pytest.approx(dict.fromkeys(rates, 0.1)), rates
    assert step.requests == compare.requests == report["requests"] == 20


def test_a_retry_past_the_steady_window_decides_its_request(run_dir: Path) -> None:
    """A failed attempt whose retry landed after the window is not a failed request."""
    step = capmod.measure_step(
        run_dir, Slo(error_rate=0.2), level=1, index=1, warmup_s=5.0, end_s=10.0
    )
    assert step.requests == 10  # q10..q19 started in [5 s, 10 s); only q11 failed
    assert step.error_rate == pytest.approx(1 / 10)
