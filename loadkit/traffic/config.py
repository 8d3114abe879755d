"""What `loadkit run` hands to its Locust processes, and what both sides read the same way.

A leaf of the traffic layer: the run settings file (`RunConfig`, never a secret), the
progress-line prefix and stop signal the parent and the locustfile agree on, and how the
API key and `${VAR}` header values are read from the environment. The orchestration
(`loadkit.orchestration.run`) and the locustfile both import it; it imports neither.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadkit.errors import UserError
from loadkit.results import run_folder as rf

PROGRESS_PREFIX = "##loadkit "
# `loadkit run` starts Locust with this file by path (`python -m locust -f LOCUSTFILE`).
LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# The environment variable naming the run-config.json a Locust process reads.
RUN_CONFIG_ENV = "LOADKIT_RUN_CONFIG"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Time the locustfile gives in-flight requests to finish once the timeline ends or stop is asked.
DRAIN_S = 10.0
# loadkit's own "stop and drain" signal to Locust. Not SIGTERM: Locust 2.47 installs its
# SIGTERM handler only after a headless run's shape greenlet has finished, so during a run
# SIGTERM ends Locust at once, with the requests in flight and the writer's last second.
STOP_SIGNAL = signal.SIGUSR1
# The environment variable that tells the locustfile who its parent is (to notice its death).
PARENT_PID_ENV = "LOADKIT_PARENT_PID"
# A Locust worker started with `loadkit worker --region R` finds R here.
WORKER_REGION_ENV = "LOADKIT_WORKER_REGION"
DEFAULT_MASTER_PORT = 5557  # Locust's


@dataclass(frozen=True)
class RunConfig:
    """What the locustfile needs, written to run-config.json (never a secret)."""

    scenario_path: str
    run_dir: str
    run_id: str
    time_scale: float
    users_override: int | None
    processes: int
    endpoints: dict[str, str]  # region -> base URL
    api_key_env: str | None
    header_refs: dict[str, str]  # header -> template with ${VAR} references
    drain_s: float
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        rf.write_json(path, asdict(self))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RunConfig:
        return cls(**json.loads(Path(path).read_text()))

    @property
    def folder(self) -> rf.RunFolder:
        """The run folder the records and logs go to."""
        return rf.RunFolder(Path(self.run_dir))


def resolve_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header values with `${VAR}` replaced from the environment; a missing variable is an error."""
    out = {}
    for name, template in headers.items():

        def sub(m: re.Match[str], header: str = name) -> str:
            value = os.environ.get(m[1])
            if value is None:
                raise UserError(f"target.headers.{header}: environment variable {m[1]} is not set")
            return value

        out[name] = _ENV_REF.sub(sub, str(template))
    return out


def api_key(api_key_env: str | None) -> str | None:
    if not api_key_env:
        return None
    value = os.environ.get(api_key_env)
    if not value:
        raise UserError(
            f"target.api_key_env: environment variable {api_key_env} is not set "
            f"(export it with the API key; loadkit never stores keys)"
        )
    return value


def secret_values(target: Any, endpoints: Mapping[str, Any] | None = None) -> list[str]:
    """The API keys and the `${VAR}` header values this run sends (the target's and every
    named endpoint's): kept out of every file and every message to a worker (a missing
    variable is the user's mistake)."""
    out: list[str] = []
    if target.kind == "http":
        key = api_key(target.api_key_env)
        out += ([key] if key else []) + [v for v in resolve_headers(target.headers).values() if v]
    for named in (endpoints or {}).values():
        ep = named.endpoint
        key = api_key(ep.key_env)
        out += ([key] if key else []) + [v for v in resolve_headers(ep.headers).values() if v]
    return out


def request_headers(api_key_env: str | None, header_refs: Mapping[str, str]) -> dict[str, str]:
    """The headers every request of the run carries: target.headers, then the API key."""
    headers = resolve_headers(header_refs)
    key = api_key(api_key_env)
    if key and not any(h.lower() in ("authorization", "api-key") for h in headers):
        headers["Authorization"] = f"Bearer {key}"
    return headers


def with_seed(scenario: Any, seed: int | None) -> Any:
    """The scenario with `--seed N` in place of its own seed (None: unchanged)."""
    if seed is None:
        return scenario
    if not 0 <= seed <= 2**63 - 1:
        raise UserError(f"--seed must be in [0, 2**63 - 1], got {seed}")
    import dataclasses

    return dataclasses.replace(scenario, seed=seed)


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
