"""A listen port for an upstream behind the target that another process holds: one line
naming the scenario's file, line and key, exit 2, nothing sent."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.run_helpers import run_cli, scenario


def test_a_listen_port_in_use_is_one_line_naming_the_scenario_line(
    mock_server, tmp_path: Path
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        path = scenario(
            tmp_path,
            "busy-port",
            target={
                "base_url": mock_server.url + "/v1",
                "model": "gpt-4o-mini",
                "upstreams": {"us": {"url": mock_server.url + "/v1", "listen": port}},
            },
        )
        done = run_cli("run", str(path), "--out", str(tmp_path / "run"), timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}:") and "target.upstreams.us.listen" in line
    assert f"port {port} is in use" in line
    assert not (tmp_path / "run" / "requests.csv").exists()
