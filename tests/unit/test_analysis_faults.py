"""Fault impact and recovery time on records with a known recovery."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadkit.analysis.drill import drill_summary
from loadkit.analysis.faults import (
    Attempts,
    FaultWindow,
    analyse_faults,
    from_journal,
    injected_mask,
)
from loadkit.analysis.requests import logical
from loadkit.analysis.run import RunFacts, analyse
from loadkit.analysis.slo import limits_from
from loadkit.results.faults_schema import FaultEvent
from loadkit.scenario.model import Slo
from tests.analysis_support import columns, failed

SLO = Slo(ttft_ms={"p95": 1000.0}, error_rate=0.01)


def _run(slow_until_s: float, end_s: float = 60.0) -> list[dict]:
    """A request every 100 ms; 10-20 s: injected failures; 20 s-`slow_until_s`: TTFT 2 s."""
    rows = []
    for i, t in enumerate(np.arange(0.0, end_s * 1000, 100.0)):
        rid = f"r{i:04d}"
        if 10_000 <= t < 20_000:
            rows.append(failed(request_id=rid, t_sent=t, fault="outage"))
        elif 20_000 <= t < slow_until_s * 1000:
            rows.append(dict(request_id=rid, t_sent=t, ttft_ms=2000.0, e2e_ms=2500.0))
        else:
            rows.append(dict(request_id=rid, t_sent=t))
    return rows


def _faults(rows, windows, slo=SLO, bin_s=1.0):
    cols = columns(rows)
    lr = logical(cols)
    injected, _ = injected_mask(cols, windows)
    end = float(np.max(cols["t_sent"] + cols["e2e_ms"]))
    return analyse_faults(lr, Attempts.of(cols, injected), windows, limits_from(slo), end, bin_s)


WINDOW = FaultWindow("outage", "region_outage", 10_000.0, 20_000.0, "na")


def test_recovery_time_is_when_errors_and_p95_ttft_are_back_within_slo():
    (f,) = _faults(_run(slow_until_s=25.0), [WINDOW])
    assert f["recovered"] and f["recovery_s"] == pytest.approx(5.0)
    # in flight during the window: the 100 sent inside it and the 5 ok ones sent in the
    # 0.5 s before it whose answers (500 ms) ran into it
    assert f["requests"] == f["attempts"] == 105
    assert f["error_rate"] == pytest.approx(100 / 105)
    assert f["failed_attempts_injected"] == 100 and f["failed_attempts_organic"] == 0
    assert f["recovery_basis"] == "SLO"


def test_recovery_is_immediate_when_the_service_was_fine_right_after():
    (f,) = _faults(_run(slow_until_s=20.0), [WINDOW])
    assert f["recovered"] and f["recovery_s"] == 0.0


def test_not_recovered_when_latency_stays_above_the_slo():
    (f,) = _faults(_run(slow_until_s=999.0), [WINDOW])
    assert not f["recovered"] and f["recovery_s"] is None
    assert "not back within limits" in f["recovery_note"]


def test_a_fault_still_active_at_the_end_has_no_recovery():
    (f,) = _faults(_run(slow_until_s=25.0), [FaultWindow("outage", "x", 10_000.0, math.inf)])
    assert f["active_at_end"] and not f["recovered"]
    assert "still active" in f["recovery_note"]


def test_without_slo_recovery_is_judged_against_the_pre_fault_level():
    (f,) = _faults(_run(slow_until_s=30.0), [WINDOW], slo=None)
    # before the fault: 0% errors, p95 TTFT 100 ms -> limits 1% and 150 ms
    assert f["recovery_limits"] == {"error_rate": 0.01, "ttft_p95_ms": 150.0}
    assert f["recovered"] and f["recovery_s"] == pytest.approx(10.0)


def test_windows_from_the_fault_journal():
    events = [
        FaultEvent(1000.0, "start", "a", "http_error", "na"),
        FaultEvent(2000.0, "start", "b", "latency"),
        FaultEvent(3000.0, "end", "a", "http_error", "na"),
        FaultEvent(5000.0, "clear"),
    ]
    ws = from_journal(events)
    assert [(w.fault_id, w.start_ms, w.end_ms, w.region) for w in ws] == [
        ("a", 1000.0, 3000.0, "na"),
        ("b", 2000.0, 5000.0, ""),
    ]


def test_analyse_reports_recovery_and_the_verdict_uses_it():
    a = analyse(columns(_run(slow_until_s=25.0)), RunFacts(slo=SLO, faults=(WINDOW,)))
    doc = a.to_json()
    (f,) = doc["faults"]
    assert f["recovered"]
    # the run's bins are half its window; a 60 s run has 1 s windows, so 0.5 s... at least 1 s
    assert f["recovery_s"] == pytest.approx(5.0, abs=1.0)
    items = {i["check"]: i for i in doc["verdict"]["items"]}
    assert items["recovery from outage (region_outage)"]["status"] == "go"
    assert "after the window ended" in items["recovery from outage (region_outage)"]["evidence"]


def test_untagged_failures_of_a_connection_level_fault_count_as_injected():
    # a refused connection has no response to carry the tag: inferred from window and region
    rows = [
        failed(request_id="a", t_sent=500.0, outcome="connect_error", region="na"),
        failed(request_id="b", t_sent=1500.0, outcome="connect_error", region="na"),
        failed(request_id="c", t_sent=1500.0, outcome="connect_error", region="eu"),
        failed(request_id="d", t_sent=1600.0, fault="storm"),
        dict(request_id="e", t_sent=1700.0, region="na"),
    ]
    cols = columns(rows)
    outage = FaultWindow("na-down", "region_outage", 1000.0, 2000.0, "na")
    latency = FaultWindow("slow", "latency", 0.0, 2000.0, "")
    mask, inferred = injected_mask(cols, [outage, latency])
    assert mask.tolist() == [False, True, False, True, False] and inferred == 1
    doc = analyse(cols, RunFacts(faults=(outage,))).to_json()
    assert doc["failures"] == {
        "failed_attempts": 4,
        "injected": 2,
        "injected_untagged": 1,
        "organic": 2,
    }


def test_a_stream_cut_when_the_outage_begins_belongs_to_the_outage():
    # sent 1 s before the outage, cut 1.2 s later: in flight when the window opened
    rows = [
        failed(request_id="cut", t_sent=9_000.0, e2e_ms=1_200.0, outcome="stream_cut"),
        dict(request_id="before", t_sent=8_000.0, e2e_ms=500.0),  # over before it began
        dict(request_id="other-region", t_sent=12_000.0, region="eu"),
        dict(request_id="after", t_sent=20_000.0),  # sent when it had ended
    ]
    cols = columns(rows)
    injected, inferred = injected_mask(cols, [WINDOW])
    assert injected.tolist() == [True, False, False, False] and inferred == 1
    (f,) = _faults(rows, [WINDOW])
    assert f["requests"] == 1 and f["failed_attempts_injected"] == 1


def test_the_summary_and_the_drill_count_the_same_window():
    rows = _run(slow_until_s=25.0)
    rows.append(failed(request_id="cut", t_sent=9_700.0, e2e_ms=600.0, outcome="stream_cut"))
    cols = columns(rows)
    events = [
        FaultEvent(10_000.0, "start", "outage", "region_outage", "na"),
        FaultEvent(20_000.0, "end", "outage", "region_outage", "na"),
    ]
    doc = analyse(cols, RunFacts(slo=SLO, faults=tuple(from_journal(events)))).to_json()
    (fault,) = doc["faults"]
    (window,) = drill_summary(cols, events, SLO.error_rate)["windows"]
    assert fault["attempts"] == window["attempts"] == 106
    assert fault["requests"] == window["requests"] == 106
