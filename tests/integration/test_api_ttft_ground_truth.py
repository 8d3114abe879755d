"""TTFT as the client measures it, against the mock's ground truth, for every provider API
side by side in one run.

The mock stamps each answer with `x-mock-ttft-ms`: the time from the request's arrival to
its first token, on the server's own clock. The client's TTFT (send -> first content frame,
read by each API's decoder) can only be longer, by the loopback trip and the parsing on
both sides; that difference is the measurement's error, and it must not depend on the API.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadkit.results.reader import read_records
from tests.run_helpers import run_cli, scenario

COPILOT = {
    "api": "http",
    "model": "gpt-4o-mini",
    "request": {
        "path": "/api/ask",
        "body": {"question": "{{question}}", "max_tokens": "{{max_tokens}}", "stream": "sse"},
    },
    "response": {
        "format": "sse",
        "event": "token",
        "text": "text",
        "done_event": "done",
        "usage": {"prompt": "usage.prompt_tokens", "completion": "usage.completion_tokens"},
    },
}


@pytest.fixture(scope="module")
def four_apis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ttft")
    path = scenario(
        tmp,
        "four-apis",
        target={"mock": "hosted-api", "model": "gpt-4o-mini", "record_headers": ["x-mock-ttft-ms"]},
        endpoints={
            "claude": {"api": "anthropic", "model": "claude-sonnet-4-5"},
            "azure": {"api": "azure", "model": "gpt-4o-mini"},
            "copilot": COPILOT,
        },
        regions=[
            {"name": "oa", "share": "25%"},
            {"name": "an", "share": "25%", "endpoint": "claude"},
            {"name": "az", "share": "25%", "endpoint": "azure"},
            {"name": "cp", "share": "25%", "endpoint": "copilot"},
        ],
        workloads=[{"name": "chat", "kind": "chat", "prompt_tokens": 200, "output_tokens": 16}],
        load={
            "type": "closed",
            "spawn_rate": "8/s",
            "phases": [{"kind": "hold", "users": 8, "for": "10s"}],
        },
    )
    out = tmp / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_every_api_answers_and_is_recorded_as_its_own(four_apis: Path) -> None:
    rec = read_records(four_apis / "requests.csv")
    outcome = rec["outcome"].astype(str)
    assert (outcome == "ok").all(), rec["error"][outcome != "ok"]
    api = rec["api"].astype(str)
    assert set(api) == {"openai", "anthropic", "azure", "http"}
    by_api = dict(zip(api.tolist(), rec["endpoint"].astype(str).tolist(), strict=True))
    assert by_api["anthropic"] == "/v1/messages"
    assert by_api["azure"] == "/openai/deployments/gpt-4o-mini/chat/completions"
    assert by_api["http"] == "/api/ask"
    # the copilot reports usage at its done event: the server's counts, not estimates
    assert (rec["tokens_source"].astype(str) == "server").all()


def test_ttft_error_against_the_mocks_ground_truth_is_the_same_for_every_api(
    four_apis: Path,
) -> None:
    rec = read_records(four_apis / "requests.csv")
    api = rec["api"].astype(str)
    truth = rec["h_x_mock_ttft_ms"].astype(float)
    err = rec["ttft_ms"] - truth
    medians = {}
    for name in ("openai", "anthropic", "azure", "http"):
        e = err[api == name]
        assert e.size >= 5, name
        # never earlier than the server sent it; the loopback trip and parsing, a few ms
        assert e.min() > -0.5, (name, e.min())
        medians[name] = float(np.median(e))
        assert medians[name] < 5.0, medians
    assert max(medians.values()) - min(medians.values()) < 3.0, medians
