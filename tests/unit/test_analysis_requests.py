"""Logical requests, goodput, cost shares and breakdowns on records with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from loadkit.analysis.breakdown import breakdown
from loadkit.analysis.costs import cost_breakdown, monthly_projection
from loadkit.analysis.requests import logical
from loadkit.analysis.run import RunFacts, analyse
from loadkit.analysis.slo import good_mask, goodput, limits_from
from loadkit.scenario.model import Slo
from tests.analysis_support import columns, failed

ROWS = [
    # A: fails in na (injected), retried 1 s later in eu and succeeds
    failed(request_id="A", t_sent=0.0, fault="f1", cost_usd=0.0005),
    dict(request_id="A", attempt=1, region="eu", t_sent=1000.0, ttft_ms=200.0, e2e_ms=800.0),
    # B: one clean attempt
    dict(request_id="B", t_sent=0.0, ttft_ms=100.0, e2e_ms=500.0),
    # C: fails twice, organic timeouts, in eu
    failed(request_id="C", region="eu", t_sent=100.0, outcome="timeout", status=0),
    failed(request_id="C", region="eu", attempt=1, t_sent=700.0, outcome="timeout", status=0),
]


def test_logical_requests_fold_attempts():
    lr = logical(columns(ROWS))
    assert lr.n == 3
    a, b, c = 0, 1, 2  # sorted by request_id
    assert lr.ok.tolist() == [True, True, False]
    assert lr.outcome.tolist() == ["ok", "ok", "timeout"]
    assert lr.attempts.tolist() == [2, 1, 2]
    assert lr.latency_ms[a] == 1800.0  # first send to last byte
    assert lr.ttft_ms[a] == 1200.0  # the user waited for the retry's first token
    assert lr.latency_ms[b] == 500.0 and lr.ttft_ms[b] == 100.0
    assert np.isnan(lr.latency_ms[c]) and np.isnan(lr.ttft_ms[c])
    assert lr.region.tolist() == ["na", "na", "eu"]  # home region, before failover
    assert lr.failover.tolist() == [True, False, False]
    assert lr.faulted.tolist() == [True, False, False]
    assert lr.cost_usd[a] == pytest.approx(0.0015)


def test_open_loop_latency_starts_at_the_intended_time():
    lr = logical(columns([dict(request_id="X", t_intended=100.0, t_sent=150.0, ttft_ms=50.0)]))
    assert lr.start_ms[0] == 100.0 and lr.ttft_ms[0] == 100.0 and lr.latency_ms[0] == 550.0


def test_goodput_counts_ok_requests_within_the_loosest_limit():
    lr = logical(columns(ROWS))
    lim = limits_from(Slo(ttft_ms={"p50": 500.0, "p95": 1000.0}, e2e_ms={"p99": 5000.0}))
    assert (lim.ttft_ms, lim.e2e_ms, lim.ttft_p95_ms) == (1000.0, 5000.0, 1000.0)
    # A's user TTFT is 1200 ms > 1000: not good although it succeeded; C failed
    assert good_mask(lr, lim).tolist() == [False, True, False]
    g = goodput(lr, lim, duration_s=2.0)
    assert g["good_requests"] == 1 and g["goodput_per_s"] == 0.5
    assert g["good_share"] == pytest.approx(1 / 3, abs=1e-6)
    loose = limits_from(Slo(ttft_ms={"p95": 2000.0}))
    assert good_mask(lr, loose).tolist() == [True, True, False]
    assert good_mask(lr, limits_from(None)).tolist() == [True, True, False]


def test_cost_per_success_waste_and_retry_shares():
    cols = columns(ROWS)
    c = cost_breakdown(cols, logical(cols))
    # spend: A 0.0005 (failed) + 0.001, B 0.001, C 0 + 0
    assert c["total_usd"] == pytest.approx(0.0025)
    assert c["per_ok_request_usd"] == pytest.approx(0.0025 / 2)
    assert c["per_request_usd"] == pytest.approx(0.0025 / 3)
    assert c["wasted_share"] == pytest.approx(0.0005 / 0.0025)
    assert c["retry_usd"] == pytest.approx(0.001)  # A's second attempt (C's cost nothing)
    assert c["retry_ok_usd"] == pytest.approx(0.001)
    same = monthly_projection(0.001, 10.0, 10.0, 10.0)
    assert "monthly_usd_at_planned_mean" not in same and "rate_note" not in same
    # the measured rate leads; the planned ones are beside it, a gap over 5% is said
    p = monthly_projection(0.001, measured_rps=5.05, peak_rps=10.0, mean_rps=2.25)
    assert p["monthly_usd"] == pytest.approx(0.001 * 5.05 * 30 * 86400)
    assert p["monthly_usd_at_planned_peak"] == pytest.approx(0.001 * 10 * 30 * 86400)
    assert p["monthly_usd_at_planned_mean"] == pytest.approx(0.001 * 2.25 * 30 * 86400)
    assert p["rate_note"] == "measured 5.05 requests/s, planned 2.25 (x2.24)"
    assert monthly_projection(None, 10.0) is None


def test_no_price_is_not_zero_dollars():
    cols = columns([{**r, "cost_usd": float("nan")} for r in ROWS])
    c = cost_breakdown(cols, logical(cols))
    assert not c["priced"]
    assert c["per_ok_request_usd"] is None and c["total_usd"] is None


def test_breakdown_by_home_region():
    lr = logical(columns(ROWS))
    rows = breakdown(lr, "region", limits_from(None), duration_s=2.0)
    assert [r["region"] for r in rows] == ["eu", "na"]
    eu, na = rows
    assert (eu["requests"], eu["requests_ok"], eu["error_rate"]) == (1, 0, 1.0)
    assert (na["requests"], na["requests_ok"], na["failover_requests"]) == (2, 2, 1)
    assert na["ttft_ms"]["p50"] == pytest.approx(650.0)  # of 1200 and 100
    assert eu["cost_usd_per_ok_request"] is None


def test_analyse_series_and_summary_keys_are_consistent():
    cols = columns(ROWS)
    a = analyse(cols, RunFacts(slo=Slo(ttft_ms={"p95": 1000.0}, error_rate=0.01)))
    doc = a.to_json()
    for key in ("requests", "ttft_ms", "error_rate", "outcomes", "slo"):  # summarize()'s keys
        assert key in doc
    assert doc["requests"] == 3 and doc["requests_ok"] == 2
    assert doc["failures"] == {
        "failed_attempts": 3,
        "injected": 1,
        "injected_untagged": 0,
        "organic": 2,
    }
    assert doc["failover"] == {"requests": 1, "ok": 1}
    assert int(a.series["attempts_per_s"].sum() * a.windows.width_s) == 5
    assert doc["verdict"]["overall"] == "no-go"  # a third of the requests failed
    assert "error rate" in doc["verdict"]["failing"]
