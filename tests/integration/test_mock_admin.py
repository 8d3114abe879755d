"""Regions, the admin API (run-time changes, outages) and the metrics endpoint."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import openai
import pytest

from loadkit.serving.launch import ServerProcess
from tests.conftest import FAST_MOCK, StartMock, http_request

CHAT = "/v1/chat/completions"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
FIXED = {
    **FAST_MOCK,
    "latency_scale": 1.0,
    "prefill_overhead_ms": 20.0,
    "prefill_ms_per_token": 0.0,
    "decode_step_ms": 2.0,
    "rate_limits": None,
}


def admin(server: ServerProcess, method: str = "GET", body: object = None, path: str = "config"):
    return http_request(method, f"{server.url}/admin/{path}", json_body=body)


def refused(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


@pytest.fixture
def regions(start_mock: StartMock) -> ServerProcess:
    config = {**FIXED, "regions": {"us": {}, "eu": {"prefill_overhead_ms": 60.0}}}
    return start_mock(config)


def test_regions_have_their_own_listeners_and_profiles(regions: ServerProcess) -> None:
    cfg = admin(regions).json()
    assert list(cfg["regions"]) == ["us", "eu"]
    us, eu = cfg["regions"]["us"], cfg["regions"]["eu"]
    assert us["state"] == eu["state"] == "up" and us["url"] != eu["url"]
    assert eu["config"]["prefill_overhead_ms"] == 60.0
    # the announced lines (read by a thread of their own: wait for them a moment)
    deadline = time.monotonic() + 5.0
    while not any(ln.startswith("region eu http://") for ln in regions.lines):
        assert time.monotonic() < deadline, regions.lines
        time.sleep(0.02)
    # the front listener serves the first region at /v1 and any region under /NAME/v1
    front = http_request("POST", regions.url + CHAT, json_body=BODY)
    assert front.headers["x-mock-region"] == "us"
    via_prefix = http_request("POST", regions.url + "/eu" + CHAT, json_body=BODY)
    direct = http_request("POST", eu["url"] + CHAT, json_body=BODY)
    for r in (via_prefix, direct):
        assert r.status_code == 200 and r.headers["x-mock-region"] == "eu"
        assert float(r.headers["x-mock-ttft-ms"]) >= 60.0
    assert float(front.headers["x-mock-ttft-ms"]) < 60.0
    assert http_request("POST", regions.url + "/mars" + CHAT, json_body=BODY).status_code == 404


def test_patch_changes_capacity_and_latency_at_run_time(regions: ServerProcess) -> None:
    before = float(
        http_request("POST", regions.url + CHAT, json_body=BODY).headers["x-mock-ttft-ms"]
    )
    r = admin(regions, "PATCH", {"regions": {"us": {"latency_scale": 5, "max_num_seqs": 3}}})
    assert r.status_code == 200
    us = r.json()["regions"]["us"]["config"]
    assert us["latency_scale"] == 5.0 and us["max_num_seqs"] == 3
    after = float(
        http_request("POST", regions.url + CHAT, json_body=BODY).headers["x-mock-ttft-ms"]
    )
    assert after >= 4 * before * 0.9 and after >= 100.0  # 20 ms prefill x 5
    # top-level keys apply to every region
    r = admin(regions, "PATCH", {"rate_limits": {"rpm": 1000}})
    assert all(v["config"]["rate_limits"]["rpm"] == 1000 for v in r.json()["regions"].values())
    resp = http_request("POST", regions.url + "/eu" + CHAT, json_body=BODY)
    assert resp.headers["x-ratelimit-limit-requests"] == "1000"


def test_bad_patch_changes_nothing(regions: ServerProcess) -> None:
    r = admin(
        regions, "PATCH", {"regions": {"us": {"max_num_seqs": 4}, "eu": {"max_num_seqs": -1}}}
    )
    assert r.status_code == 400
    err = r.json()["error"]
    assert "regions.eu.max_num_seqs" in err["message"] and "integer >= 1" in err["message"]
    assert admin(regions).json()["regions"]["us"]["config"]["max_num_seqs"] != 4
    assert admin(regions, "PATCH", {"regions": {"moon": {}}}).status_code == 404
    assert admin(regions, "PATCH", {"bogus_key": 1}).status_code == 400
    assert admin(regions, "PATCH", {"down": "sometimes"}).status_code == 400
    assert admin(regions, "PATCH", {"port": 1}).status_code == 400


def test_region_outage_refuse_then_recover(regions: ServerProcess) -> None:
    eu_url = admin(regions).json()["regions"]["eu"]["url"]
    r = admin(regions, "PATCH", {"regions": {"eu": {"down": "refuse"}}})
    assert r.json()["regions"]["eu"]["state"] == "down"
    assert refused(eu_url)
    resp = http_request("POST", regions.url + "/eu" + CHAT, json_body=BODY)
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "service_unavailable"
    c = openai.OpenAI(base_url=eu_url + "/v1", api_key="sk", max_retries=0, timeout=5.0)
    with pytest.raises(openai.APIConnectionError):
        c.chat.completions.create(**BODY)  # type: ignore[arg-type]
    # the other region is untouched
    assert http_request("POST", regions.url + CHAT, json_body=BODY).status_code == 200
    r = admin(regions, "PATCH", {"regions": {"eu": {"down": False}}})
    assert r.json()["regions"]["eu"]["state"] == "up"
    assert r.json()["regions"]["eu"]["url"] == eu_url  # same port again
    assert c.chat.completions.create(**BODY).usage.completion_tokens == 2  # type: ignore[arg-type]


def test_region_outage_503_and_reset(regions: ServerProcess) -> None:
    eu_url = admin(regions).json()["regions"]["eu"]["url"]
    admin(regions, "PATCH", {"regions": {"eu": {"down": "503", "latency_scale": 3}}})
    resp = http_request("POST", eu_url + CHAT, json_body=BODY)
    assert resp.status_code == 503 and resp.headers.get("x-request-id")
    c = openai.OpenAI(base_url=eu_url + "/v1", api_key="sk", max_retries=0)
    with pytest.raises(openai.InternalServerError):
        c.chat.completions.create(**BODY)  # type: ignore[arg-type]
    r = admin(regions, "POST", path="reset")
    eu = r.json()["regions"]["eu"]
    assert eu["state"] == "up" and eu["config"]["latency_scale"] == 1.0
    assert http_request("POST", eu_url + CHAT, json_body=BODY).status_code == 200


def test_down_region_cuts_streams_in_flight(start_mock: StartMock) -> None:
    server = start_mock({**FIXED, "output_tokens": {"dist": "fixed", "value": 5000}})
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="sk", max_retries=0, timeout=10.0)
    stream = c.chat.completions.create(
        model="gpt-4o-mini",
        messages=BODY["messages"],
        stream=True,  # type: ignore[arg-type]
    )
    next(iter(stream))
    admin(server, "PATCH", {"down": "503"})
    with pytest.raises(openai.APIConnectionError):  # the stream is cut, not ended
        for _ in stream:
            pass
    metrics = http_request("GET", server.url + "/metrics").text
    assert 'vllm:num_requests_running{model_name="gpt-4o-mini",region="default"} 0' in metrics


def test_metrics_use_vllm_names(mock_server: ServerProcess) -> None:
    c = openai.OpenAI(base_url=mock_server.url + "/v1", api_key="sk")
    c.chat.completions.create(**BODY)  # type: ignore[arg-type]
    text = http_request("GET", mock_server.url + "/metrics").text
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_count",
        "vllm:e2e_request_latency_seconds_sum",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
    ):
        assert name in text, name
    assert "# TYPE vllm:time_to_first_token_seconds histogram" in text
    gen = [ln for ln in text.splitlines() if ln.startswith("vllm:generation_tokens_total{")]
    assert float(gen[0].rsplit(" ", 1)[1]) >= 2
