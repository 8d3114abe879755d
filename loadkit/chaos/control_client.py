"""Start the proxy as a subprocess and drive its control API from a plain (blocking) process.

Used by `loadkit run` (the fault timeline driver), tests and benchmarks. Stdlib HTTP only,
so it works in a gevent-patched Locust process and in a plain one alike.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadkit.errors import UserError
from loadkit.serving.launch import ServerProcess, start_server


class ChaosControlError(RuntimeError):
    """The control API refused a call (a bug in the caller, or the proxy is gone)."""


@dataclass(frozen=True)
class ChaosControl:
    url: str  # the proxy's front URL
    token: str | None = None
    timeout_s: float = 10.0

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(
            self.url + "/chaos" + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            raise ChaosControlError(f"{method} /chaos{path}: {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ChaosControlError(f"{method} /chaos{path}: {exc}") from None

    def put(self, fault: Mapping[str, Any]) -> str:
        """Add or replace; returns `start` or `update`."""
        return str(self.call("PUT", f"/faults/{fault['id']}", dict(fault))["event"])

    def remove(self, fault_id: str) -> bool:
        try:
            self.call("DELETE", f"/faults/{fault_id}")
        except ChaosControlError as exc:
            if " 404 " in str(exc):
                return False
            raise
        return True

    def load(self, faults: Sequence[Mapping[str, Any]]) -> Any:
        return self.call("POST", "/load", {"faults": [dict(f) for f in faults]})

    def reset(self) -> None:
        self.call("POST", "/reset", {})

    def status(self) -> dict[str, Any]:
        return dict(self.call("GET", "/status"))


@dataclass
class ProxyProcess:
    server: ServerProcess
    region_urls: dict[str, str]
    control: ChaosControl

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()


def start_proxy(
    upstream: str,
    regions: Mapping[str, str] | None = None,
    *,
    seed: int = 0,
    token: str | None = None,
    faults_file: str | None = None,
    timeout_s: float = 20.0,
    upstream_listeners: Mapping[str, tuple[int, str]] | None = None,
    hits_file: str | None = None,
) -> ProxyProcess:
    """`python -m loadkit.chaos` on 127.0.0.1, port 0; waits for its region lines too.

    `upstream_listeners`: {name: (port, url)}, fixed ports behind a gateway; `hits_file`:
    where it journals each request a fault touched.
    """
    argv = ["loadkit.chaos", "--upstream", upstream, "--port", "0", "--seed", str(seed)]
    for name, url in (regions or {}).items():
        argv += ["--region", f"{name}={url}"]
    for name, (port, url) in (upstream_listeners or {}).items():
        argv += ["--upstream-listener", f"{name}:{port}={url}"]
    if hits_file:
        argv += ["--hits", hits_file]
    if faults_file:
        argv += ["--faults", faults_file]
    env = {"LOADKIT_CHAOS_TOKEN": token} if token else None
    server = start_server("chaos proxy", argv, timeout=timeout_s, env=env)
    try:
        want = set(regions or {})
        urls: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        while want - set(urls):
            for line in list(server.lines):
                parts = line.split()
                if len(parts) == 3 and parts[0] == "region":
                    urls[parts[1]] = parts[2]
            if want - set(urls):
                if time.monotonic() > deadline:
                    raise UserError("the chaos proxy did not print its region listeners")
                time.sleep(0.02)
    except BaseException:
        server.stop()
        raise
    return ProxyProcess(server, urls, ChaosControl(server.url, token))


@contextlib.contextmanager
def running_proxy(
    upstream: str, regions: Mapping[str, str] | None = None, **kw: Any
) -> Iterator[ProxyProcess]:
    proxy = start_proxy(upstream, regions, **kw)
    try:
        yield proxy
    finally:
        proxy.stop()
