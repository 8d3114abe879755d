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


def test_a_model_other_than_the_scenarios_is_shown_not_hidden() -> None:
    from loadkit.analysis.models import same_model
    from loadkit.analysis.summary import format_table, summarize

    assert same_model("gpt-4o-mini", "gpt-4o-mini-2024-07-18")
    assert same_model("gpt-4o-mini", "openai/gpt-4o-mini")
    assert not same_model("gpt-4o-mini", "tiny-llama-random")
    rows = [{"request_id": f"r{i}", "t_sent": 10.0 * i, "model": "gpt-4o-mini"} for i in range(4)]
    rows[0]["response_model"] = "gpt-4o-mini-2024-07-18"
    for r in rows[1:]:
        r["response_model"] = "tiny-llama-random"
    cols = columns(rows)
    s = summarize(cols)
    assert s["model_mismatch"] == [
        {"requested": "gpt-4o-mini", "answered": "tiny-llama-random", "attempts": 3}
    ]
    warning = [x for x in format_table(s).splitlines() if x.startswith("warning:")]
    assert warning == [
        "warning: the scenario asks for model gpt-4o-mini but the service answered as "
        "tiny-llama-random in 3 attempts: prices, cache billing and comparisons assume gpt-4o-mini"
    ]
    v = analyse(cols).to_json()["verdict"]
    assert any(i["check"] == "model that answered" for i in v["items"])


def test_estimated_tokens_of_failed_attempts_only_are_said_so() -> None:
    from loadkit.analysis.summary import format_table, summarize

    rows = [{"request_id": f"r{i}", "t_sent": 10.0 * i} for i in range(9)]
    rows.append(failed(request_id="x", t_sent=5.0, tokens_source="estimated"))
    table = format_table(summarize(columns(rows)))
    assert "(10% of attempts' tokens estimated: only failed attempts" in table
