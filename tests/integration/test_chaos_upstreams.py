"""The proxy's upstream listeners: fixed ports behind a gateway, faults by `where.upstream`,
the serving upstream named in every answer, and a hit journal keyed by the client's attempt."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from loadkit.chaos.control_client import running_proxy
from loadkit.results.faults_schema import ATTEMPT_HEADER, read_fault_hits
from loadkit.serving.launch import running_server
from tests.chaos_support import MOCK, region_urls
from tests.ports import free_port

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def _chat(url: str, attempt: str = "", stream: bool = False) -> tuple[int, dict[str, str], bytes]:
    body = {**BODY, "stream": stream}
    headers = {"Content-Type": "application/json"}
    if attempt:
        headers[ATTEMPT_HEADER] = attempt
    req = urllib.request.Request(
        url + "/v1/chat/completions", data=json.dumps(body).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_upstream_listeners_fault_by_name_and_journal_hits(tmp_path: Path) -> None:
    cfg = tmp_path / "mock.yaml"
    cfg.write_text(json.dumps(MOCK))
    hits = tmp_path / "fault_hits.csv"
    ports = {"us": free_port(), "eu": free_port()}
    with running_server("mock", ["mocks", "--port", "0", "--config", str(cfg)]) as mock:
        regions = region_urls(mock)
        listeners = {"us": (ports["us"], regions["na"]), "eu": (ports["eu"], regions["eu"])}
        with running_proxy(mock.url, upstream_listeners=listeners, hits_file=str(hits)) as proxy:
            us, eu = (f"http://127.0.0.1:{ports[n]}" for n in ("us", "eu"))
            status, headers, _ = _chat(us)
            assert status == 200 and headers["x-loadkit-upstream"] == "us"
            assert headers["x-mock-region"] == "na"  # forwarded to the url it was given
            # a fault behind the gateway: only the eu listener's requests are hit
            proxy.control.put(
                {"id": "eu-503", "kind": "http_error", "params": {"status": 503},
                 "where": {"upstream": "eu"}}
            )  # fmt: skip
            status, headers, _ = _chat(eu, attempt="q7/0")
            assert status == 503 and headers["x-loadkit-fault"] == "eu-503"
            assert headers["x-loadkit-upstream"] == "eu"
            assert _chat(us, attempt="q8/0")[0] == 200
            proxy.control.remove("eu-503")
            # an outage of one upstream closes its port: the gateway's connection is refused
            proxy.control.put(
                {"id": "us-down", "kind": "region_outage", "where": {"upstream": "us"}}
            )
            with pytest.raises(urllib.error.URLError):
                _chat(us, attempt="q9/0")
            assert _chat(eu)[0] == 200
            status = proxy.control.status()
            assert status["upstreams"]["us"]["down"] and not status["upstreams"]["eu"]["down"]
            proxy.control.remove("us-down")
            assert _chat(us)[0] == 200  # the same port again
    rows = read_fault_hits(hits)
    assert [(h.fault_id, h.kind, h.attempt, h.upstream) for h in rows] == [
        ("eu-503", "http_error", "q7/0", "eu"),
        ("us-down", "region_outage", "", "us"),
    ]
