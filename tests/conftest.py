"""Shared fixtures: the real mock provider as a subprocess on 127.0.0.1, port chosen by the OS."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import settings

from loadkit.serving.launch import ServerProcess, start_server
from tests.real_target import llama_server  # noqa: F401  (the real-target fixture)

# The default profile at 1/20 of its latency: every engine effect stays, tests stay fast.
FAST_MOCK = {"latency_scale": 0.05, "jitter": {"sigma": 0.0, "step_sigma": 0.0, "tail_prob": 0.0}}

StartMock = Callable[..., ServerProcess]

# Under pytest-xdist (`-n 2`, pyproject's addopts) tests run in two worker processes, a
# module at a time. These modules stay together in one worker, one test after another:
# - "timing": they measure time (schedule lag, TTFT, pacing, stop and flush times, a
#   benchmark's run): two of them side by side on a 2-core machine would measure each other;
#   the modules that read the session's shared quickstart and drill runs
#   (tests/e2e/conftest.py) are here too, so those runs happen once, in one worker;
# - "llama" / "litellm": the modules that start a real llama-server or LiteLLM proxy (a
#   session fixture, so one server in one worker instead of one per worker).
XDIST_GROUPS: dict[str, tuple[str, ...]] = {
    "timing": (
        "unit/test_openloop.py",
        "unit/test_results_io.py",
        "integration/test_bench_smoke.py",
        "integration/test_mock_api.py",
        "integration/test_mock_engine.py",
        "integration/test_results_sigkill.py",
        "integration/test_traffic_client.py",
        "integration/test_traffic_rxstamp.py",
        "e2e/test_capacity_mock.py",
        "e2e/test_chaos_run.py",
        "e2e/test_report_e2e.py",
        "e2e/test_run_bench_smoke.py",
        "e2e/test_run_openloop.py",
        "e2e/test_run_quickstart.py",
        "e2e/test_run_signals.py",
        "e2e/test_scenario_hostile.py",
        "integration/test_api_ttft_ground_truth.py",
        "e2e/test_run_overload.py",
    ),
    "llama": (
        "integration/test_calibrate.py",
        "integration/test_real_llama_server.py",
        "integration/test_real_request_fields.py",
        "integration/test_trace_prefix_replay.py",
        "integration/test_real_llama_anthropic.py",
        "integration/test_real_overload.py",
    ),
    "litellm": (
        "integration/test_litellm_gateway.py",
        "e2e/test_gateway_drill.py",
        "e2e/test_gateway_cross_provider.py",
    ),
}
_GROUP_OF = {path: group for group, paths in XDIST_GROUPS.items() for path in paths}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scheduler, a work unit per group above (the rest: one per module).

    Its own `--dist loadgroup` cannot do it on pytest 9.2: it renames the test ids to
    `...@group`, which pytest 9.2 no longer lets a plugin change.
    """
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return _GROUP_OF.get(path.removeprefix("tests/"), path)

    return GroupScheduling(config, log)


# CI is reproducible: hypothesis draws the same examples on every run there (`.ci/run` sets
# CI=true), so a red build is the code's, not the draw's; a developer's run keeps exploring.
# Examples that once failed are pinned with @example beside their property.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _start(
    tmp: Path, config: dict[str, Any] | None = None, *args: str, name: str = "mock"
) -> ServerProcess:
    argv = ["mocks", "--port", "0", *args]
    if config is not None:
        tmp.mkdir(parents=True, exist_ok=True)
        path = tmp / f"mock-{len(list(tmp.glob('mock-*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        argv += ["--config", str(path)]
    return start_server(name, argv)


@pytest.fixture(scope="session")
def mock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One shared mock (default profile, latency x0.05, no jitter) for read-mostly tests."""
    server = _start(tmp_path_factory.mktemp("mock"), FAST_MOCK)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_mock(tmp_path: Path) -> Iterator[StartMock]:
    """`start_mock(config_dict, *cli_args)` -> a fresh mock, stopped after the test."""
    started: list[ServerProcess] = []

    def start(config: dict[str, Any] | None = None, *args: str) -> ServerProcess:
        server = _start(tmp_path, config, *args)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@dataclass
class HttpResponse:
    status_code: int
    headers: Message  # case-insensitive get()
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def http_request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    content: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> HttpResponse:
    """A plain stdlib HTTP call that returns error statuses instead of raising."""
    hdrs = dict(headers or {})
    data: Any = content
    if json_body is not None:
        data = json.dumps(json_body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return HttpResponse(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        return HttpResponse(exc.code, exc.headers, exc.read())
