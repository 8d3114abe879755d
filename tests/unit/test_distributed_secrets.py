"""What a master sends to its workers never carries a secret value.

`loadkit run --master` gives Locust a generated locustfile that Locust sends to every worker
(`-f -`): the run config and the scenario text. The test builds it the way the master does,
for a scenario whose API key and a header come from environment variables set to sentinel
values, and looks for the sentinels in every byte that leaves the master or lands in the
run folder.
"""

from __future__ import annotations

import ast
import contextlib
import io
from pathlib import Path

import pytest

from loadkit.orchestration import run as runner
from loadkit.orchestration.run_distributed import master_setup
from loadkit.results import run_folder as rf
from loadkit.scenario import load_scenario
from loadkit.traffic.config import secret_values

KEY = "sentinel-api-key-7f3a9c21e5"
HEADER = "sentinel-header-b81d44f0"

SCENARIO = """\
name: secrets-check
# the key, pasted here by mistake: sentinel-api-key-7f3a9c21e5
target:
  base_url: http://127.0.0.1:9/v1
  api_key_env: LOADKIT_TEST_API_KEY
  model: m
  headers:
    x-api-key: ${LOADKIT_TEST_HEADER}
    x-team: support
workloads:
  - {name: chat, prompt_tokens: 100, output_tokens: 50}
load:
  type: closed
  phases:
    - {kind: hold, users: 2, for: 10s}
"""


@pytest.fixture
def master_payload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    monkeypatch.setenv("LOADKIT_TEST_API_KEY", KEY)
    monkeypatch.setenv("LOADKIT_TEST_HEADER", HEADER)
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    secrets = secret_values(scenario.target)
    assert KEY in secrets and HEADER in secrets  # the run resolves them (sanity)
    opts = runner.RunOptions(scenario=path, master=True, expect_workers=2)
    folder = rf.prepare(tmp_path / "run")
    rf.write_scenario_copy(folder, path, secrets)
    endpoints = runner.scenario_endpoints(scenario, None)
    cfg = runner.run_config(scenario, opts, folder.path, "abc123", 1.0, endpoints)
    cfg.write(folder.run_config)
    with contextlib.ExitStack() as stack:
        locustfile = master_setup(
            stack, opts, folder.run_config, scenario, endpoints, io.StringIO(), secrets
        )
        sent = locustfile.read_bytes()
    return {
        "worker locustfile": sent,
        "run-config.json": folder.run_config.read_bytes(),
        "scenario copy": folder.scenario_yaml.read_bytes(),
    }


def test_no_secret_value_reaches_a_worker_or_the_run_folder(
    master_payload: dict[str, bytes],
) -> None:
    for what, data in master_payload.items():
        for secret in (KEY, HEADER):
            assert secret.encode() not in data, f"{what} holds a secret value"


def test_workers_get_the_variable_names_and_a_scenario_they_can_load(
    master_payload: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = master_payload["worker locustfile"].decode()
    assert "LOADKIT_TEST_API_KEY" in sent and "${LOADKIT_TEST_HEADER}" in sent
    module = ast.parse(sent)
    text = next(
        node.value.value
        for node in module.body
        if isinstance(node, ast.Assign)
        and getattr(node.targets[0], "id", "") == "SCENARIO_TEXT"
        and isinstance(node.value, ast.Constant)
    )
    (tmp_path / "as_sent.yaml").write_text(text)
    assert load_scenario(tmp_path / "as_sent.yaml").name == "secrets-check"
