"""Runs that several e2e modules read: each is run once per session, not once per module.

The quickstart (`scenarios/quickstart.yaml`, compressed to 8 s, into the default results
place under its own working directory) and the compressed two-region drill (an outage of
`na`, then a 50% 503 storm) are the same runs whether a test reads their console, their
records, their summary or their report; a test that changes the folder copies it first.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.run_helpers import REPO, run_cli, scenario

QUICKSTART = REPO / "scenarios" / "quickstart.yaml"

DRILL_REGIONS = [{"name": "na", "share": "50%"}, {"name": "eu", "share": "50%"}]
DRILL_CLIENT = {
    "timeouts": {"connect": "2s", "first_token": "5s", "between_tokens": "5s", "total": "20s"},
    "retries": {"max": 0},
    "failover": ["eu", "na"],
}
DRILL_FAULTS = [
    {
        "id": "na-down",
        "at": "20s",
        "for": "30s",
        "kind": "region_outage",
        "where": {"region": "na"},
    },
    {"id": "storm", "at": "50s", "for": "20s", "kind": "http_error", "status": 503, "rate": "50%"},
]


@dataclass(frozen=True)
class Run:
    proc: subprocess.CompletedProcess[str]
    out: Path  # the run folder


@pytest.fixture(scope="session")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """`loadkit run scenarios/quickstart.yaml --duration 8s` in a fresh working directory."""
    cwd = tmp_path_factory.mktemp("quickstart")
    proc = run_cli("run", str(QUICKSTART), "--duration", "8s", cwd=cwd, timeout=150)
    runs = list((cwd / "results").glob("quickstart-*"))
    assert proc.returncode == 0 and len(runs) == 1, proc.stdout + proc.stderr
    return Run(proc, runs[0])


@pytest.fixture(scope="session")
def drill_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The two-region drill, 90 s compressed to 9 s: na down 2-5 s, a 503 storm 5-7 s."""
    tmp = tmp_path_factory.mktemp("drill")
    path = scenario(
        tmp,
        "drill",
        regions=DRILL_REGIONS,
        client=DRILL_CLIENT,
        load={"type": "open", "process": "constant", "phases": [{"rate": "20/s", "for": "90s"}]},
        faults=DRILL_FAULTS,
        slo={"ttft": {"p95": "2s"}, "error_rate": "5%"},
    )
    out = tmp / "run"
    proc = run_cli("run", str(path), "--duration", "9s", "--out", str(out), timeout=150)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return Run(proc, out)
