"""The gateway drill as a new user runs it: a real LiteLLM proxy as the target, two mock
regions behind it through loadkit's upstream listeners, an outage of one upstream.

Done when (issue 14): `served_by` shows both upstreams outside the window and only the
healthy one inside it, the window is journaled, recovery is judged, the report draws the
failover.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from loadkit.results.faults_schema import read_fault_events
from loadkit.results.reader import read_records
from tests.chaos_support import region_urls
from tests.conftest import FAST_MOCK, StartMock
from tests.litellm_gateway import Deployment, litellm_gateway, missing_reason
from tests.ports import free_port
from tests.run_helpers import run_cli, scenario

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=missing_reason() or "")

OUTAGE_AT_S, OUTAGE_FOR_S, DURATION_S = 8.0, 8.0, 28.0


def _gateway_target(gw_url: str, urls: dict[str, str], ports: dict[str, int]) -> dict:
    """The scenario's target: the gateway, and the two mock regions behind it through
    loadkit's listeners on `ports`."""
    return {
        "base_url": gw_url,
        "api_key_env": "LITELLM_TEST_KEY",
        "model": "gpt-4o-mini",
        "upstreams": {n: {"url": urls[n] + "/v1", "listen": ports[n]} for n in ("us", "eu")},
    }


def test_an_upstream_outage_behind_litellm(start_mock: StartMock, tmp_path: Path) -> None:
    mock = start_mock({**FAST_MOCK, "regions": {"us": {}, "eu": {}}})
    urls = region_urls(mock)
    ports = {"us": free_port(), "eu": free_port()}
    deployments = [Deployment(n, f"http://127.0.0.1:{ports[n]}/v1") for n in ("us", "eu")]
    router = {
        "routing_strategy": "simple-shuffle",
        "num_retries": 2,
        "allowed_fails": 1,
        "cooldown_time": 2,
        "retry_after": 0,
    }
    with litellm_gateway(tmp_path, deployments, router) as gw:
        path = scenario(
            tmp_path,
            "gateway-drill",
            target={
                **_gateway_target(gw.url, urls, ports),
                "record_headers": ["x-litellm-attempted-retries", "x-litellm-overhead-duration-ms"],
            },
            load={
                "type": "closed",
                "phases": [{"kind": "hold", "users": 4, "for": f"{DURATION_S:g}s"}],
            },
            workloads=[
                {
                    "name": "chat",
                    "kind": "chat",
                    "prompt_tokens": 30,
                    "output_tokens": 8,
                    "stream": True,
                    "think_time": "100ms",
                }
            ],
            faults=[
                {
                    "id": "us-down",
                    "at": f"{OUTAGE_AT_S:g}s",
                    "for": f"{OUTAGE_FOR_S:g}s",
                    "kind": "region_outage",
                    "where": {"upstream": "us"},
                }
            ],
            slo={"error_rate": "5%"},
        )
        run = tmp_path / "run"
        done = run_cli(
            "run", str(path), "--out", str(run), timeout=240, env={"LITELLM_TEST_KEY": gw.key}
        )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]

    rec = read_records(run / "requests.csv")
    t = rec["t_sent"] / 1000.0
    served = rec["served_by"].astype(str)
    ok = rec["outcome"] == "ok"
    before = ok & (t < OUTAGE_AT_S - 1)
    inside = ok & (t > OUTAGE_AT_S + 1) & (t < OUTAGE_AT_S + OUTAGE_FOR_S - 1)
    after = ok & (t > OUTAGE_AT_S + OUTAGE_FOR_S + 6)
    assert set(served[before]) == {"us", "eu"}, np.unique(served[before], return_counts=True)
    assert set(served[inside]) == {"eu"}, np.unique(served[inside], return_counts=True)
    assert "us" in set(served[after]), "the gateway never sent traffic back to us"
    # the gateway's own headers are kept as columns
    assert set(rec["h_x_litellm_attempted_retries"][ok]) <= {"0", "1", "2", ""}
    assert any(v != "" for v in rec["h_x_litellm_overhead_duration_ms"][ok])

    events = read_fault_events(run / "faults.csv")
    starts = [e for e in events if e.event == "start"]
    assert [(e.fault_id, e.upstream) for e in starts] == [("us-down", "us")]

    summary = json.loads((run / "summary.json").read_text())
    (fault,) = summary["faults"]
    assert fault["upstream"] == "us" and fault["requests"] > 0
    back = fault["recovery_by_upstream"]["us"]
    assert back["recovered"], back
    items = {i["check"]: i for i in summary["verdict"]["items"]}
    assert items["upstream us serving again after us-down"]["status"] == "go"
    (window,) = summary["chaos"]["windows"]
    assert window["upstream"] == "us" and window["attempts"] == fault["attempts"]
    assert (run / "charts" / "served_by.png").stat().st_size > 10_000
    assert "Traffic per upstream" in (run / "report.html").read_text()
    print(
        f"drill: {len(rec)} attempts, {int(ok.sum())} ok; inside the window "
        f"{int(inside.sum())} ok all on eu; us back {back['recovery_s']} s after; "
        f"window error rate {fault['error_rate']}; verdict {summary['verdict']['overall']}"
    )


def test_streams_cut_behind_litellm_are_truncated_not_ok(
    start_mock: StartMock, tmp_path: Path
) -> None:
    """LiteLLM re-ends a cut upstream stream with its own finish_reason, usage and [DONE],
    and passes the proxy's tag on as `llm_provider-x-loadkit-fault`: the tag of a truncating
    fault on an answer that looked whole makes it `truncated`. (LiteLLM does not forward
    the client's x-loadkit-attempt by default, so the hit journal cannot join here.)"""
    mock = start_mock({**FAST_MOCK, "regions": {"us": {}, "eu": {}}})
    urls = region_urls(mock)
    ports = {"us": free_port(), "eu": free_port()}
    deployments = [Deployment(n, f"http://127.0.0.1:{ports[n]}/v1") for n in ("us", "eu")]
    with litellm_gateway(tmp_path, deployments, {"routing_strategy": "simple-shuffle"}) as gw:
        path = scenario(
            tmp_path,
            "gateway-cut",
            target=_gateway_target(gw.url, urls, ports),
            load={"type": "closed", "phases": [{"kind": "hold", "users": 3, "for": "12s"}]},
            workloads=[
                {
                    "name": "chat",
                    "kind": "chat",
                    "prompt_tokens": 30,
                    "output_tokens": 40,
                    "stream": True,
                    "think_time": "100ms",
                }
            ],
            faults=[
                {
                    "id": "cut-us",
                    "at": "3s",
                    "for": "6s",
                    "kind": "cut",
                    "after_tokens": 5,
                    "where": {"upstream": "us"},
                }
            ],
        )
        run = tmp_path / "run"
        done = run_cli(
            "run", str(path), "--out", str(run), timeout=180, env={"LITELLM_TEST_KEY": gw.key}
        )
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    hits = summary["fault_hits"]
    rec = read_records(run / "requests.csv")
    cut = rec["fault"] == "cut-us"
    # what the client itself saw: answers that looked whole (LiteLLM re-ended them)...
    assert cut.any() and set(rec["outcome"][cut]) == {"ok"}
    assert set(rec["finish_reason"][cut]) == {"stop"} and set(rec["served_by"][cut]) == {"us"}
    # ... and what the run says they were
    assert hits["hits"] >= int(cut.sum()) and hits["truncated"] == int(cut.sum()), hits
    counts = summary["outcomes"]
    assert counts.get("truncated", 0) == hits["truncated"]
    assert summary["verdict"]["overall"] == "no-go"
    assert "were cut upstream (counted truncated)" in done.stdout
    print(f"cut behind the gateway: {hits}; outcomes {counts}")
