"""LLMClient against the real mock provider, in a gevent-patched subprocess (traffic_driver).

Bounded: each case is a few to ~100 requests with short outputs; the mock's latency knobs
are set through `--config` so the effects are large compared to scheduling noise.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadkit.serving.launch import ServerProcess, running_server

REPO = Path(__file__).resolve().parents[2]


def drive(case: str, **args: Any) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.traffic_driver", case, json.dumps(args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


@pytest.fixture
def mock_with(tmp_path: Path):
    """Start the mock with profile overrides (YAML mapping) for the test's duration."""
    started: list[Any] = []

    def start(overrides: dict[str, Any] | None = None, *extra: str) -> ServerProcess:
        argv = ["mocks", "--port", "0", *extra]
        if overrides:
            cfg = tmp_path / f"mock{len(started)}.yaml"
            cfg.write_text(json.dumps(overrides))  # JSON is YAML
            argv += ["--config", str(cfg)]
        cm = running_server("mock", argv)
        server = cm.__enter__()
        started.append(cm)
        return server

    yield start
    for cm in reversed(started):
        cm.__exit__(None, None, None)


@pytest.fixture(scope="module")
def default_mock() -> Iterator[ServerProcess]:
    with running_server("mock", ["mocks", "--port", "0"]) as server:
        yield server


SLOW = {"decode_step_ms": 100.0, "decode_step_ms_per_seq": 0.0}


def test_ttft_is_taken_at_the_first_event_not_the_end(mock_with):
    srv = mock_with(SLOW)
    out = drive("calls", url=srv.url, max_tokens=12, n=2)
    for res in out["results"]:
        rec = res["records"][0]
        truth = float(res["headers"][0]["x-mock-ttft-ms"])
        assert rec["outcome"] == "ok" and rec["completion_tokens"] == 12
        # 11 more tokens at 100 ms each follow the first: E2E ~ TTFT + 1.1 s
        assert rec["e2e_ms"] - rec["ttft_ms"] > 900.0
        assert abs(rec["ttft_ms"] - truth) < 25.0
        assert rec["itl_mean_ms"] == pytest.approx(100.0, rel=0.1)


def test_measured_ttft_agrees_with_the_mocks_ground_truth(default_mock):
    out = drive("calls", url=default_mock.url, max_tokens=16, n=64, concurrency=8)
    diffs = []
    for res in out["results"]:
        rec = res["records"][0]
        assert rec["outcome"] == "ok", rec
        diffs.append(rec["ttft_ms"] - float(res["headers"][0]["x-mock-ttft-ms"]))
    d = np.array(diffs)
    print(f"TTFT - x-mock-ttft-ms: median {np.median(d):.2f} ms, p90 {np.percentile(d, 90):.2f}")
    # The client clock starts before the connection and request bytes, the mock's at arrival:
    # measured TTFT is never below the truth by more than clock noise, and close above it.
    # Margins allow for a 2-core machine shared with other work (the mock's event loop and
    # this client compete for CPU); reading at the end of the stream would be ~200 ms off.
    assert d.min() > -1.0
    assert np.median(d) < 6.0
    assert np.percentile(d, 90) < 25.0


def test_itl_matches_the_profile_on_long_outputs(mock_with):
    srv = mock_with(
        {
            "decode_step_ms": 20.0,
            "decode_step_ms_per_seq": 0.0,
            "jitter": {"step_sigma": 0.0},
            "output_tokens": {"dist": "fixed", "value": 400},
        }
    )
    out = drive("calls", url=srv.url, max_tokens=150, n=4, concurrency=4)
    for res in out["results"]:
        rec = res["records"][0]
        assert rec["completion_tokens"] == 150
        assert rec["itl_mean_ms"] == pytest.approx(20.0, rel=0.05)
        assert rec["itl_max_ms"] >= rec["itl_p99_ms"] >= rec["itl_mean_ms"] * 0.9
        # E2E = TTFT + 149 gaps
        assert rec["e2e_ms"] == pytest.approx(rec["ttft_ms"] + 149 * rec["itl_mean_ms"], abs=15.0)


def test_a_429_is_retried_after_retry_after_ms(mock_with):
    srv = mock_with({"rate_limits": {"rpm": 120, "burst_seconds": 0.5}})
    # backoff of 5 s if the header were ignored; the bucket asks for ~0.5 s
    out = drive(
        "calls",
        url=srv.url,
        max_tokens=2,
        n=2,
        concurrency=2,
        retries={"backoff_initial_s": 5.0, "backoff_max_s": 5.0, "max_retries": 2},
    )
    retried = [r for r in out["results"] if r["attempts"] > 1]
    assert len(retried) == 1, out["results"]
    res = retried[0]
    first, second = res["records"][0], res["records"][1]
    assert first["outcome"] == "rate_limited" and first["status"] == 429
    assert second["outcome"] == "ok" and res["ok"]
    asked_ms = float(res["headers"][0]["retry-after-ms"])
    waited = second["t_sent"] - (first["t_sent"] + first["e2e_ms"])
    assert asked_ms - 5.0 <= waited <= asked_ms + 150.0
    assert first["request_id"] == second["request_id"]
    assert [first["attempt"], second["attempt"]] == [0, 1]


def test_a_dead_region_fails_over_and_every_attempt_is_recorded_once(default_mock):
    out = drive(
        "calls",
        endpoints={"dead": "dead", "live": default_mock.url},
        region="dead",
        failover=["live"],
        max_tokens=3,
        n=3,
        concurrency=3,
        retries={"backoff_initial_s": 5.0},
    )
    for res in out["results"]:
        regions = [r["region"] for r in res["records"]]
        outcomes = [r["outcome"] for r in res["records"]]
        assert regions == ["dead", "live"]
        assert outcomes == ["connect_error", "ok"]
        assert res["ok"] and len({r["request_id"] for r in res["records"]}) == 1
        # no backoff before failing over from a refused connection
        assert res["latency_ms"] < 3000.0
        # the logical latency spans both attempts
        last = res["records"][-1]
        assert res["latency_ms"] >= last["t_sent"] - res["records"][0]["t_sent"] + last["e2e_ms"]
    keys = [(r["request_id"], r["attempt"]) for r in out["sunk"]]
    assert len(keys) == 6 and len(set(keys)) == 6


def test_first_token_timeout_is_retried_then_reported(mock_with):
    srv = mock_with({"prefill_overhead_ms": 600.0})
    out = drive(
        "calls",
        url=srv.url,
        timeouts={"first_token_s": 0.2},
        retries={"max_retries": 1, "backoff_initial_s": 0.05, "backoff_max_s": 0.05},
    )
    res = out["results"][0]
    assert not res["ok"] and res["attempts"] == 2
    for rec in res["records"]:
        assert rec["outcome"] == "timeout"
        assert 190.0 <= rec["e2e_ms"] <= 400.0


def test_a_stalled_stream_is_reported_not_retried(mock_with):
    srv = mock_with({"decode_step_ms": 400.0, "decode_step_ms_per_seq": 0.0})
    out = drive("calls", url=srv.url, max_tokens=5, timeouts={"between_tokens_s": 0.15})
    res = out["results"][0]
    assert res["attempts"] == 1
    rec = res["records"][0]
    assert rec["outcome"] == "stalled" and rec["ttft_ms"] is not None
    assert rec["e2e_ms"] == pytest.approx(rec["ttft_ms"] + 150.0, abs=60.0)


def test_tokens_inside_the_between_tokens_timeout_keep_a_long_stream_alive(mock_with):
    # 100 ms gaps under a 150 ms limit, 0.8 s in all: the stall timer fires and re-arms
    srv = mock_with(
        {
            "decode_step_ms": 100.0,
            "decode_step_ms_per_seq": 0.0,
            "jitter": {"step_sigma": 0.0, "tail_prob": 0.0},
        }
    )
    out = drive("calls", url=srv.url, max_tokens=9, timeouts={"between_tokens_s": 0.15})
    rec = out["results"][0]["records"][0]
    assert rec["outcome"] == "ok" and rec["completion_tokens"] == 9
    assert rec["e2e_ms"] - rec["ttft_ms"] >= 700.0


def test_simulated_rtt_adds_one_round_trip_and_leaves_itl_alone(mock_with):
    srv = mock_with(
        {"decode_step_ms": 30.0, "decode_step_ms_per_seq": 0.0, "jitter": {"step_sigma": 0.0}}
    )
    out = drive("calls", url=srv.url, max_tokens=10, n=3, rtt_ms={"r1": 200.0})
    for res in out["results"]:
        rec = res["records"][0]
        truth = float(res["headers"][0]["x-mock-ttft-ms"])
        assert rec["ttft_ms"] - truth == pytest.approx(200.0, abs=20.0)
        assert rec["itl_mean_ms"] == pytest.approx(30.0, rel=0.1)


def test_non_streaming_completions_and_embeddings(default_mock):
    chat = drive("calls", url=default_mock.url, stream=False, max_tokens=5)["results"][0]
    rec = chat["records"][0]
    assert rec["outcome"] == "ok" and rec["ttft_ms"] == rec["e2e_ms"]
    assert rec["tokens_source"] == "server" and rec["completion_tokens"] == 5
    comp = drive("calls", url=default_mock.url, kind="completions", max_tokens=5)["results"][0]
    assert comp["records"][0]["endpoint"] == "/v1/completions" and comp["ok"]
    assert comp["records"][0]["completion_tokens"] == 5 and comp["text_len"] > 0
    emb = drive("calls", url=default_mock.url, kind="embeddings", model="text-embedding-3-small")
    rec = emb["results"][0]["records"][0]
    assert rec["outcome"] == "ok" and rec["ttft_ms"] is None and rec["prompt_tokens"] > 0


def test_locust_stats_get_ttft_and_itl_rows_without_inflating_aggregated(default_mock):
    out = drive("locust_stats", url=default_mock.url, n=6)
    assert out["total"] == 6 and out["total_failures"] == 0
    assert out["rows"] == {"POST chat": 6, "TTFT chat": 6, "ITL chat": 6}
    assert 300 <= out["ttft_median"] <= 2000


@pytest.fixture(scope="module")
def fault_server() -> Iterator[ServerProcess]:
    env = {"PYTHONPATH": str(REPO)}
    with running_server("fault-sse", ["tests.fault_sse_server", "--port", "0"], env=env) as srv:
        yield srv


def one(srv: ServerProcess, model: str, **args: Any) -> dict[str, Any]:
    return drive("calls", url=srv.url, model=model, **args)["results"][0]


def test_mid_stream_failures_are_classified(fault_server):
    cut = one(fault_server, "cut")
    assert [r["outcome"] for r in cut["records"]] == ["stream_cut"]  # text seen: no retry
    assert cut["records"][0]["ttft_ms"] is not None
    # the words that did arrive are estimated and paid for
    assert cut["records"][0]["completion_tokens"] > 0
    assert cut["records"][0]["tokens_source"] == "estimated"
    bad = one(fault_server, "malformed")["records"]
    assert [r["outcome"] for r in bad] == ["malformed"]
    err = one(fault_server, "error_frame")["records"]
    assert [r["outcome"] for r in err] == ["stream_error"]  # its own outcome, its message
    assert "overloaded mid-stream" in err[0]["error"]


def test_reasoning_deltas_count_for_ttft_and_usage_fallback(fault_server):
    res = one(fault_server, "reasoning")
    rec = res["records"][0]
    assert rec["outcome"] == "ok" and rec["tokens_source"] == "server"
    # 8 content chunks (3 reasoning + 5 text), the first after one 20 ms step
    assert rec["ttft_ms"] < 120.0 and rec["itl_mean_ms"] == pytest.approx(20.0, abs=8.0)
    no_usage = one(fault_server, "no_usage")["records"][0]
    assert no_usage["outcome"] == "ok" and no_usage["tokens_source"] == "estimated"
    assert no_usage["completion_tokens"] == 7  # "word " x 5 = 25 chars


def test_fault_tag_and_server_retry_advice(fault_server):
    assert one(fault_server, "tagged")["records"][0]["fault"] == "latency"
    no_retry = one(fault_server, "no_retry_503", retries={"backoff_initial_s": 0.01})
    assert [r["status"] for r in no_retry["records"]] == [503]  # x-should-retry: false
    flaky = one(fault_server, "flaky_500", retries={"backoff_initial_s": 0.01})
    assert [r["status"] for r in flaky["records"]] == [500, 500, 200]
    assert flaky["ok"] and [r["attempt"] for r in flaky["records"]] == [0, 1, 2]
    dated = one(fault_server, "date_429", retries={"backoff_initial_s": 0.01})
    first, second = dated["records"]
    waited = second["t_sent"] - (first["t_sent"] + first["e2e_ms"])
    assert 900.0 <= waited <= 2600.0  # an HTTP-date retry-after ~2 s away (1 s resolution)


def test_connect_timeout_then_failover(default_mock):
    out = drive(
        "calls",
        endpoints={"slow": "unaccepting", "live": default_mock.url},
        region="slow",
        failover=["live"],
        max_tokens=2,
        timeouts={"connect_s": 0.3},
    )
    res = out["results"][0]
    first, second = res["records"]
    assert first["outcome"] == "connect_error" and first["error"] == "connect timeout"
    assert 280.0 <= first["e2e_ms"] <= 800.0
    assert second["region"] == "live" and second["outcome"] == "ok"


def test_a_stale_pooled_connection_is_replaced_once_without_a_new_attempt(fault_server):
    """llama.cpp's server closes after each streamed answer although it says keep-alive."""
    out = drive("calls", url=fault_server.url, model="close_after", n=6)
    results = out["results"]
    assert all(r["ok"] for r in results)
    records = [r["records"] for r in results]
    assert all(len(recs) == 1 for recs in records)  # the resend is not an attempt
    recs = [recs[0] for recs in records]
    assert [r["outcome"] for r in recs] == ["ok"] * 6
    # the first request opened the connection; every later one met a spent connection
    assert [r["reconnects"] for r in recs] == [0, 1, 1, 1, 1, 1]
    # the clock restarted at the resend: TTFT is one 20 ms step, not a failed try plus one
    assert all(r["ttft_ms"] < 150.0 for r in recs)
    assert all(r["response_model"] == "m" for r in recs)


def test_a_fresh_connection_that_closes_is_still_an_error(fault_server):
    res = one(fault_server, "always_close", retries={"max_retries": 0})
    (rec,) = res["records"]
    assert rec["outcome"] == "connect_error" and rec["reconnects"] == 0
