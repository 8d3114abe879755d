"""Every fault kind seen by loadkit's own client (gevent-patched, as under Locust): outcomes.

The client runs in a subprocess (tests.traffic_driver) because Locust patches the
interpreter with gevent; the proxy and mock are subprocesses too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loadkit.chaos.control_client import ProxyProcess
from loadkit.serving.launch import ServerProcess
from tests.chaos_support import mock_and_proxy

REPO = Path(__file__).resolve().parents[2]
POLICY = {
    "timeouts": {"connect_s": 2.0, "first_token_s": 1.0, "between_tokens_s": 0.6, "total_s": 10},
    "retries": {"max_retries": 0},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ProxyProcess]]:
    with mock_and_proxy(tmp_path_factory.mktemp("chaos")) as pair:
        yield pair


def drive(**args: Any) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.traffic_driver", "calls", json.dumps(args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


# kind, params, expected record outcome, expected status
CASES: list[tuple[str, dict[str, Any], str, int]] = [
    ("http_error", {"status": 429, "retry_after_ms": 1000}, "rate_limited", 429),
    ("http_error", {"status": 503}, "http_error", 503),
    ("http_error", {"status": 529}, "http_error", 529),
    ("brownout", {"error_rate": 1.0}, "http_error", 503),
    ("latency", {"fixed_ms": 200}, "ok", 200),
    ("refuse", {}, "connect_error", 0),
    ("reset", {}, "connect_error", 0),
    ("hang", {}, "timeout", 0),
    ("stall", {"after_tokens": 3}, "stalled", 200),
    ("cut", {"after_tokens": 3}, "stream_cut", 200),
    ("reset_mid", {"after_tokens": 3}, "stream_cut", 200),
    ("error_frame", {"after_tokens": 3}, "stream_error", 200),
    ("malformed_chunk", {"after_tokens": 3}, "malformed", 200),
    ("drop_usage", {}, "ok", 200),
    ("slow_tokens", {"factor": 3}, "ok", 200),
    ("duplicate_chunk", {"after_tokens": 3}, "ok", 200),
]


def test_every_fault_kind_gives_the_expected_record(stack) -> None:
    _, proxy = stack
    seen: dict[str, Any] = {}
    for i, (kind, params, outcome, status) in enumerate(CASES):
        fid = f"{kind}-{i}"
        proxy.control.load([{"id": fid, "kind": kind, "params": params}])
        res = drive(url=proxy.url, n=1, max_tokens=12, **POLICY)
        (rec,) = res["sunk"]
        seen[fid] = rec
        assert (rec["outcome"], rec["status"]) == (outcome, status), (fid, rec)
        assert rec["fault"] == (fid if status else ""), (fid, rec)  # no response, no tag
    proxy.control.reset()
    base = drive(url=proxy.url, n=1, max_tokens=12, **POLICY)["sunk"][0]
    assert base["outcome"] == "ok" and base["fault"] == ""
    assert base["tokens_source"] == "server" and base["completion_tokens"] == 12
    # partial answers are paid for; a dropped usage chunk means estimated tokens
    assert seen["cut-9"]["completion_tokens"] == 3
    assert seen["drop_usage-13"]["tokens_source"] == "estimated"
    assert seen["drop_usage-13"]["completion_tokens"] == 12
    assert seen["duplicate_chunk-15"]["completion_tokens"] == 12  # usage is the server's word
    assert seen["latency-4"]["ttft_ms"] >= base["ttft_ms"] + 180
    assert seen["slow_tokens-14"]["itl_mean_ms"] > 2.0 * base["itl_mean_ms"]


def test_region_outage_then_failover_records_both_attempts(stack) -> None:
    _, proxy = stack
    proxy.control.load([{"id": "na-out", "kind": "region_outage", "where": {"region": "na"}}])
    try:
        res = drive(
            endpoints=dict(proxy.region_urls),
            region="na",
            failover=["eu"],
            n=3,
            max_tokens=5,
            **POLICY,
        )
    finally:
        proxy.control.reset()
    for r in res["results"]:
        assert r["ok"]
        outcomes = [(x["region"], x["outcome"]) for x in r["records"]]
        assert outcomes == [("na", "connect_error"), ("eu", "ok")]


def test_workload_selector_sees_the_clients_header(stack) -> None:
    _, proxy = stack
    proxy.control.load(
        [
            {
                "id": "w",
                "kind": "http_error",
                "where": {"workload": "chat"},
                "params": {"status": 500},
            }
        ]
    )
    try:
        res = drive(url=proxy.url, n=2, max_tokens=3, **POLICY)
        proxy.control.load(
            [
                {
                    "id": "w",
                    "kind": "http_error",
                    "where": {"workload": "rag"},
                    "params": {"status": 500},
                }
            ]
        )
        other = drive(url=proxy.url, n=2, max_tokens=3, **POLICY)
    finally:
        proxy.control.reset()
    assert [r["outcome"] for r in res["sunk"]] == ["http_error"] * 2
    assert [r["outcome"] for r in other["sunk"]] == ["ok"] * 2
