"""llama.cpp's own `llama-server` (../shared/real-target) as a test target on 127.0.0.1.

`bash ../shared/real-target/up.sh` builds it once (about 9 minutes on 2 cores) under
`${RT:-${TMPDIR:-/tmp}/realtarget}`; `.ci/run` does that before the tests. The fixture
here starts the shared `start-server.sh` in the foreground on a port of its own (so it
never meets a server someone left on 8080) and stops it after the session. Tests that
use it skip, saying why, when the server is not built.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "real-target"
MODEL_NAME = "tiny-llama-random"


def _rt() -> Path:
    return Path(os.environ.get("RT") or Path(os.environ.get("TMPDIR") or "/tmp") / "realtarget")


def missing_reason() -> str | None:
    """Why llama-server cannot be started here, or None."""
    if not (SHARED / "start-server.sh").exists():
        return f"{SHARED} not found (the shared real-target scripts)"
    rt = _rt()
    if not (rt / "build" / "bin" / "llama-server").exists():
        return f"llama-server not built under {rt}: run `bash ../shared/real-target/up.sh` once"
    if not (rt / "models" / f"{MODEL_NAME}.gguf").exists():
        return f"the random-weight model is missing under {rt}: run ../shared/real-target/up.sh"
    return None


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (`http://127.0.0.1:PORT/v1`) of a running llama-server, 4 slots."""
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    env = {**os.environ, "RT": str(_rt()), "PORT": str(port), "FOREGROUND": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", str(SHARED / "start-server.sh")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    origin = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _healthy(origin):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                pytest.fail(f"llama-server did not start on {origin}:\n{tail}")
            time.sleep(0.3)
        yield origin + "/v1"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
