"""Faults behind a gateway: who served each request, per-upstream recovery, the failover chart."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadkit.analysis.faults import FaultWindow
from loadkit.analysis.run import RunFacts, analyse
from loadkit.report.build import build_report
from loadkit.results.faults_schema import FaultEvent, write_fault_events
from loadkit.results.schema import HEADER_LINE, to_csv_line
from loadkit.scenario.model import Slo
from tests.analysis_support import columns
from tests.records import record

SLO = Slo(ttft_ms={"p95": 1000.0}, error_rate=0.01)
OUTAGE = FaultWindow("us-down", "region_outage", 10_000.0, 20_000.0, upstream="us")


def _rows(back_at_s: float = 24.0, end_s: float = 40.0) -> list[dict]:
    """A request every 100 ms from two user regions; the gateway alternates us/eu, sends
    everything to eu from the outage until `back_at_s`."""
    rows = []
    for i in range(int(end_s * 10)):
        t = i * 100.0
        up = "eu" if 10_000 <= t < back_at_s * 1000 or i % 2 else "us"
        rows.append(
            dict(request_id=f"r{i}", t_sent=t, region="na" if i % 3 else "eu", served_by=up)
        )
    return rows


def _check(doc: dict, name: str) -> dict:
    return {i["check"]: i for i in doc["verdict"]["items"]}[name]


def test_a_window_behind_the_gateway_takes_every_region_and_recovery_per_upstream():
    doc = analyse(columns(_rows()), RunFacts(slo=SLO, faults=(OUTAGE,))).to_json()
    (f,) = doc["faults"]
    assert f["upstream"] == "us"
    # every user region's requests crossed the gateway while us was out: none filtered away
    assert f["requests"] == 105  # 100 sent inside, 5 in flight when it began
    by = f["recovery_by_upstream"]
    assert by["us"]["recovered"] and by["us"]["recovery_s"] == pytest.approx(4.0, abs=1.0)
    assert by["eu"]["recovered"] and by["eu"]["recovery_s"] == 0.0
    assert doc["upstreams"] == ["eu", "us"]
    items = {i["check"]: i for i in doc["verdict"]["items"]}
    assert items["upstream us serving again after us-down"]["status"] == "go"


def test_an_upstream_the_gateway_never_sends_back_to_is_no_go():
    doc = analyse(columns(_rows(back_at_s=999.0)), RunFacts(slo=SLO, faults=(OUTAGE,))).to_json()
    (f,) = doc["faults"]
    assert not f["recovery_by_upstream"]["us"]["recovered"]
    item = {i["check"]: i for i in doc["verdict"]["items"]}[
        "upstream us serving again after us-down"
    ]
    assert item["status"] == "no-go" and "did not send traffic back to us" in item["reason"]
    assert doc["verdict"]["overall"] == "no-go"


def test_without_served_by_the_upstream_check_is_not_tested():
    rows = [{**r, "served_by": ""} for r in _rows()]
    doc = analyse(columns(rows), RunFacts(slo=SLO, faults=(OUTAGE,))).to_json()
    item = {i["check"]: i for i in doc["verdict"]["items"]}[
        "upstream us serving again after us-down"
    ]
    assert item["status"] == "not tested" and "served_by" in item["evidence"]


@pytest.mark.charts
def test_the_report_draws_traffic_per_upstream(tmp_path: Path):
    recs = [record(**r) for r in _rows()]
    (tmp_path / "requests.csv").write_text(HEADER_LINE + "".join(map(to_csv_line, recs)))
    write_fault_events(
        tmp_path / "faults.csv",
        [
            FaultEvent(10_000.0, "start", "us-down", "region_outage", upstream="us"),
            FaultEvent(20_000.0, "end", "us-down", "region_outage", upstream="us"),
        ],
    )
    result = build_report(tmp_path)
    assert (tmp_path / "charts" / "served_by.png").stat().st_size > 10_000
    assert "Traffic per upstream" in result.html.read_text()
    assert result.summary["faults"][0]["upstream"] == "us"
