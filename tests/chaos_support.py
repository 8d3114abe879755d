"""Shared set-up for the chaos tests: a deterministic mock (two regions) behind the proxy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loadkit.chaos.control_client import ProxyProcess, running_proxy
from loadkit.serving.launch import ServerProcess, running_server

# Deterministic pacing: 20 ms TTFT + one 10 ms step per token, answers as long as max_tokens.
MOCK = {
    "prefill_overhead_ms": 20.0,
    "prefill_ms_per_token": 0.0,
    "decode_step_ms": 10.0,
    "decode_step_ms_per_seq": 0.0,
    "jitter": {"sigma": 0.0, "step_sigma": 0.0, "tail_prob": 0.0},
    "output_tokens": {"dist": "fixed", "value": 100000},
    "rate_limits": {"rpm": None, "tpm": None},
    "regions": {"na": {}, "eu": {}},
}


def region_urls(server: ServerProcess) -> dict[str, str]:
    from tests.conftest import http_request

    cfg = http_request("GET", server.url + "/admin/config").json()
    return {name: info["url"] for name, info in cfg["regions"].items()}


@contextmanager
def mock_and_proxy(tmp: Path, **proxy_kw: object) -> Iterator[tuple[ServerProcess, ProxyProcess]]:
    cfg = tmp / "chaos-mock.yaml"
    cfg.write_text(json.dumps(MOCK))  # JSON is YAML
    with running_server("mock", ["mocks", "--port", "0", "--config", str(cfg)]) as mock:
        regions = region_urls(mock)
        with running_proxy(mock.url, regions, **proxy_kw) as proxy:  # type: ignore[arg-type]
            yield mock, proxy
