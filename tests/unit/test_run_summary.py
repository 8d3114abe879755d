"""The end-of-run summary computed from record columns, and the run folder helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from loadkit.analysis.summary import format_table, summarize
from loadkit.errors import UserError
from loadkit.results.run_folder import (
    REDACTED,
    default_run_dir,
    prepare,
    redact_text,
    safe_url,
    write_json,
)

NAN = float("nan")


def _cols(rows: list[dict]) -> dict[str, np.ndarray]:
    keys = rows[0].keys()
    return {k: np.array([r[k] for r in rows]) for k in keys}


def _row(rid, attempt, outcome, t_sent, e2e, ttft=50.0, cost=0.001, t_int=NAN, lag=NAN):
    return {
        "request_id": rid,
        "attempt": attempt,
        "outcome": outcome,
        "t_sent": t_sent,
        "t_intended": t_int,
        "sched_lag_ms": lag,
        "e2e_ms": e2e,
        "ttft_ms": ttft,
        "itl_mean_ms": 10.0,
        "itl_p99_ms": 20.0,
        "completion_tokens": 100,
        "prompt_tokens": 200,
        "cost_usd": cost,
        "tokens_source": "server",
        "region": "eu",
        "workload": "chat",
        "fault": "",
        "model": "m",
        "response_model": "",
        "reconnects": 0,
    }


def test_summary_figures() -> None:
    rows = [_row(f"r{i}", 1, "ok", 10.0 * i, 100.0 + i, ttft=float(i)) for i in range(100)]
    rows += [_row("x", 1, "http_error", 5.0, 3.0, ttft=NAN, cost=0.0)]
    s = summarize(_cols(rows), duration_s=10.0)
    assert s["requests"] == 101 and s["requests_ok"] == 100 and s["attempts"] == 101
    assert s["requests_per_s"] == pytest.approx(10.1)
    assert s["output_tokens_per_s"] == pytest.approx(100 * 100 / 10)
    assert s["ttft_ms"]["p50"] == pytest.approx(np.percentile(np.arange(100), 50))
    assert s["ttft_ms"]["p99"] == pytest.approx(np.percentile(np.arange(100), 99))
    assert s["outcomes"] == {"http_error": 1, "ok": 100}
    assert s["error_rate"] == pytest.approx(1 / 101, abs=1e-6)
    assert s["cost_usd_total"] == pytest.approx(0.1)
    assert s["cost_usd_per_ok_request"] == pytest.approx(0.001)
    assert not s["open_loop"] and "sched_lag_ms" not in s
    table = format_table(s)
    assert "TTFT" in table and "http_error 1" in table and "$0.100000 total" in table
    json.dumps(s)  # JSON-ready


@dataclass(frozen=True)
class Slo:
    ttft_ms: dict = field(default_factory=dict)
    itl_ms: dict = field(default_factory=dict)
    e2e_ms: dict = field(default_factory=dict)
    error_rate: float | None = None


def test_open_loop_latency_from_intended_and_slo() -> None:
    rows = [
        _row(f"r{i}", 1, "ok", 10.0 * i + 40, 100.0, ttft=50.0, t_int=10.0 * i, lag=40.0)
        for i in range(50)
    ]
    s = summarize(
        _cols(rows), 1.0, slo=Slo(ttft_ms={"p95": 60}, e2e_ms={"p99": 500}, error_rate=0.01)
    )
    assert s["open_loop"]
    assert s["ttft_from_intended_ms"]["p95"] == pytest.approx(90.0)
    assert s["sched_lag_ms"]["p99"] == pytest.approx(40.0)
    assert s["slo"]["breached"] == ["ttft_ms.p95"]  # 90 from the intended time > 60
    assert "BREACHED" in format_table(s)


def test_empty_records() -> None:
    cols = {k: np.array([]) for k in _row("a", 1, "ok", 0, 0)}
    s = summarize(cols, 5.0)
    assert s["requests"] == 0 and s["ttft_ms"]["p50"] is None
    format_table(s)


def test_redaction() -> None:
    text = (
        "target:\n"
        "  api_key_env: OPENAI_API_KEY\n"
        "  headers:\n"
        "    Authorization: Bearer abcdefghijklmnopqrstuvwx\n"
        "    x-api-key: ${MY_KEY}\n"
        "    x-team: blue  # fine\n"
        "    api-token: plainsecretvalue\n"
        "notes: my key is sk-abcdefghijklmnopqrstuvwxyz123\n"
        "other: hunter2-literal\n"
    )
    red = redact_text(text, secret_values=["hunter2-literal"])
    assert "OPENAI_API_KEY" in red  # a variable's name is not a secret
    assert "${MY_KEY}" in red
    assert "x-team: blue" in red
    for secret in ("abcdefghijklmnop", "plainsecretvalue", "sk-abcdef", "hunter2-literal"):
        assert secret not in red
    assert red.count(REDACTED) == 4


def test_run_dir_and_prepare(tmp_path) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    p = default_run_dir(tmp_path, "my scenario!", now)
    assert p.name == "my-scenario-20260102-030405"
    folder = prepare(p)
    write_json(folder.summary_json, {"x": np.float64(1.5), "a": np.arange(2)})
    assert json.loads(folder.summary_json.read_text()) == {"x": 1.5, "a": [0, 1]}
    with pytest.raises(UserError, match="already holds a run"):
        prepare(p)
    assert default_run_dir(tmp_path, "my scenario!", now).name.endswith("-2")
    assert safe_url("https://u:pw@h.example:8443/v1") == "https://h.example:8443/v1"


def test_unpriced_run_says_so() -> None:
    rows = [_row("a", 1, "ok", 0.0, 10.0, cost=NAN), _row("b", 1, "ok", 5.0, 10.0, cost=NAN)]
    s = summarize(_cols(rows), 1.0)
    assert s["cost_usd_total"] is None and s["cost_usd_per_request"] is None
    assert "cost n/a" in format_table(s)


def test_redaction_keeps_token_counts_so_the_copy_still_runs(tmp_path) -> None:
    from loadkit.scenario import load_scenario

    src = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"
    red = redact_text(src.read_text(encoding="utf-8") + "x_access_token: abcdefghijk123\n")
    assert "max_tokens: 512" in red and "prompt_tokens: {dist: lognormal" in red
    assert "abcdefghijk123" not in red
    copy = tmp_path / "scenario.yaml"
    copy.write_text(red.replace("x_access_token: <redacted>\n", ""), encoding="utf-8")
    assert load_scenario(copy).workloads[0].max_tokens == 512
