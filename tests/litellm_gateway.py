"""A real LiteLLM proxy (`litellm[proxy]` from PyPI) as a gateway on 127.0.0.1, offline.

LiteLLM pins its own dependency set, so it lives in a virtual environment of its own, not
loadkit's: `.ci/run` creates it under `${TMPDIR:-/tmp}/loadkit-litellm` (about 3 minutes on
2 cores, reused afterwards); `LOADKIT_LITELLM` may name another `litellm` executable. Tests
that use it skip, saying why, when it is absent.

Offline and private: the model cost map is the package's own copy
(`LITELLM_LOCAL_MODEL_COST_MAP=True`), telemetry is off, the master key is random per
gateway, and there is no database (no `DATABASE_URL`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.ports import free_port

ENV_VAR = "LOADKIT_LITELLM"
START_TIMEOUT_S = 120.0  # its import alone takes 10-20 s on a busy 2-core machine


def default_executable() -> Path:
    return Path(os.environ.get("TMPDIR") or "/tmp") / "loadkit-litellm" / "bin" / "litellm"


def executable() -> str | None:
    named = os.environ.get(ENV_VAR)
    if named:
        return named if Path(named).exists() else None
    if default_executable().exists():
        return str(default_executable())
    return shutil.which("litellm")


def missing_reason() -> str | None:
    if executable() is None:
        return (
            f"no LiteLLM proxy here: .ci/run installs litellm[proxy] into {default_executable()}"
            f" (or set {ENV_VAR} to a litellm executable)"
        )
    return None


@dataclass(frozen=True)
class Deployment:
    """One upstream deployment of `model` behind the gateway."""

    id: str  # LiteLLM's model id: what `x-litellm-model-id` names
    api_base: str  # the upstream's base URL (OpenAI's ending in /v1; Anthropic's without)
    model: str = "gpt-4o-mini"
    provider: str = "openai"  # LiteLLM's provider prefix: openai | anthropic


@dataclass(frozen=True)
class Gateway:
    url: str  # base URL, ending in /v1
    key: str  # its master key (random)
    process: subprocess.Popen[bytes]
    log: Path


def config(deployments: Sequence[Deployment], router: Mapping[str, Any], key: str) -> str:
    doc = {
        "model_list": [
            {
                "model_name": d.model,
                "litellm_params": {
                    "model": f"{d.provider}/{d.model}",
                    "api_base": d.api_base,
                    "api_key": "sk-upstream",
                },
                "model_info": {"id": d.id},
            }
            for d in deployments
        ],
        "router_settings": dict(router),
        "general_settings": {"master_key": key},
        "litellm_settings": {"telemetry": False},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _live(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health/liveliness", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def litellm_gateway(
    folder: Path, deployments: Sequence[Deployment], router: Mapping[str, Any] | None = None
) -> Iterator[Gateway]:
    """A LiteLLM proxy in front of `deployments`, stopped (its whole group) on exit."""
    exe = executable()
    if exe is None:
        raise RuntimeError(missing_reason())
    key = "sk-" + secrets.token_hex(16)
    cfg = folder / "litellm.yaml"
    cfg.write_text(config(deployments, router or {}, key), encoding="utf-8")
    port = free_port()
    log = folder / "litellm.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "OPENAI_API_KEY", "LITELLM_MASTER_KEY")
    }
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_TELEMETRY="False",
        LITELLM_LOG="ERROR",
        NO_DOCS="True",
    )
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [exe, "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _live(base):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"LiteLLM did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(0.25)
        yield Gateway(url=base + "/v1", key=key, process=proc, log=log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
