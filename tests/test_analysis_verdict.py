"""The readiness verdict is never silently good, and says which check decided a no-go."""

from __future__ import annotations

from types import SimpleNamespace

from loadkit.analysis.run import RunFacts, analyse
from loadkit.analysis.verdict import DEFAULT_ERROR_RATE, headline
from tests.analysis_support import columns, failed


def _run(n_ok: int, n_failed: int, slo: object | None = None, **ok_kw: object) -> dict:
    rows = [{"request_id": f"ok{i}", "t_sent": 100.0 * i, **ok_kw} for i in range(n_ok)]
    rows += [
        failed(request_id=f"bad{i}", t_sent=100.0 * i + 50.0, status=404) for i in range(n_failed)
    ]
    return analyse(columns(rows), RunFacts(slo=slo)).to_json()["verdict"]


def _slo(**kw: object) -> SimpleNamespace:
    base = {"ttft_ms": None, "e2e_ms": None, "itl_ms": None, "error_rate": None}
    return SimpleNamespace(**{**base, **kw})


def test_nothing_succeeded_is_no_go_without_any_slo() -> None:
    v = _run(0, 30)
    assert v["overall"] == "no-go" and v["failing"][0] == "requests"
    assert v["decided_by"] == "none of 30 requests succeeded (http_error 30)"
    assert headline(v).startswith("NO-GO: none of 30 requests succeeded")


def test_failures_over_the_default_limit_are_no_go_when_the_scenario_sets_none() -> None:
    assert DEFAULT_ERROR_RATE == 0.01
    v = _run(95, 5)
    assert v["overall"] == "no-go" and "failed requests" in v["failing"]
    assert "5.00% > 1.00% (loadkit's default limit)" in v["decided_by"]
    assert _run(100, 1)["overall"] == "go"  # 0.99% is within the default
    # the scenario's own limit replaces the default
    assert _run(95, 5, slo=_slo(error_rate=0.1))["overall"] == "go"
    assert _run(95, 5, slo=_slo(error_rate=0.01))["overall"] == "no-go"


def test_a_no_go_decided_outside_the_slo_lines_names_its_check() -> None:
    # every request succeeds; the per-region p95 TTFT as users felt it breaks the limit,
    # while the run-level SLO line (attempt TTFT) would be judged on its own figures
    v = _run(40, 0, slo=_slo(ttft_ms={"p95": 500.0}), ttft_ms=612.0)
    assert v["overall"] == "no-go"
    reasons = v["reasons"]
    assert "p95 TTFT 612 ms > 500 ms" in reasons
    assert "region na: p95 TTFT as users felt it (retries included) 612 ms > 500 ms" in reasons
    line = headline(v)
    assert line.startswith("NO-GO: ") and "612 ms > 500 ms" in line
