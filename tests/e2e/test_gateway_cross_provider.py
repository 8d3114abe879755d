"""Failover across providers through a real gateway: a LiteLLM proxy whose primary
deployment speaks OpenAI's API and whose fallback speaks Anthropic's (the mock's
`/v1/messages`). The primary is down (nothing listens at its address): LiteLLM falls back
to the Anthropic deployment, translates its events back into OpenAI's chunks, and loadkit
records who answered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadkit.results.reader import read_records
from loadkit.serving.launch import running_server
from tests import litellm_gateway as lg
from tests.ports import free_port
from tests.run_helpers import run_cli, scenario, summary

pytestmark = pytest.mark.skipif(lg.missing_reason() is not None, reason=lg.missing_reason() or "")


def test_primary_down_litellm_falls_back_to_the_anthropic_deployment(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"  # the primary: nobody listens there
    with running_server("mock", ["mocks", "--port", "0"]) as mock:
        deployments = [
            lg.Deployment("primary", dead, "gpt-4o-mini"),
            lg.Deployment("claude", mock.url, "claude-sonnet-4-5", provider="anthropic"),
        ]
        router = {"fallbacks": [{"gpt-4o-mini": ["claude-sonnet-4-5"]}], "num_retries": 0}
        with lg.litellm_gateway(tmp_path, deployments, router) as gw:
            path = scenario(
                tmp_path,
                "cross",
                target={
                    "base_url": gw.url,
                    "model": "gpt-4o-mini",
                    "headers": {"Authorization": "Bearer ${LITELLM_KEY}"},
                },
                workloads=[
                    {"name": "chat", "kind": "chat", "prompt_tokens": 80, "output_tokens": 12}
                ],
                load={
                    "type": "closed",
                    "spawn_rate": "3/s",
                    "phases": [{"kind": "hold", "users": 3, "for": "6s"}],
                },
                client={"retries": {"max": 0}},
            )
            out = tmp_path / "run"
            env = {"LITELLM_KEY": gw.key}
            proc = run_cli("run", str(path), "--out", str(out), "--no-calibrate", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = read_records(out / "requests.csv")
    assert rec.n >= 5
    assert (rec["outcome"].astype(str) == "ok").all(), rec["error"]
    # every answer came from the Anthropic deployment, in OpenAI's format for the client
    assert set(rec["served_by"].astype(str)) == {"claude"}
    assert all(m.startswith("claude") for m in rec["response_model"].astype(str))
    assert np.isfinite(rec["ttft_ms"]).all()
    assert (rec["completion_tokens"] > 0).all()
    assert summary(out)["verdict"]["overall"] == "go"
