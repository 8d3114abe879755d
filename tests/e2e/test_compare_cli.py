"""`loadkit compare` end to end: real pilot and production runs (compressed) on the mock."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadkit.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def pilot_and_production(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shipped pilot and production scenarios, each compressed to 10 s on the mock."""
    root = tmp_path_factory.mktemp("runs")
    pilot, prod = root / "pilot", root / "production"
    # the two runs at once (each waits on its own mock): the comparison is of what each
    # run's mock modelled, not of this machine's speed
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loadkit.cli",
                "run",
                scenario,
                "--duration",
                "10s",
                "--users",
                users,
                "--out",
                str(path),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for path, scenario, users in (
            (pilot, "scenarios/pilot.yaml", "20"),
            (prod, "scenarios/production.yaml", "40"),
        )
    ]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=150)
        assert proc.returncode == 0, stdout[-2000:] + stderr[-2000:]
    return pilot, prod


def test_compare_pilot_and_production(pilot_and_production: tuple[Path, Path], tmp_path: Path):
    pilot, prod = pilot_and_production
    out = tmp_path / "cmp"
    proc = _cli(
        "compare", str(pilot), str(prod), "--labels", "pilot", "production", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "compare.json").read_text())
    assert [r["label"] for r in doc["runs"]] == ["pilot", "production"]
    assert doc["baseline"] == "pilot"
    runs = {r["label"]: r for r in doc["runs"]}
    assert runs["production"]["requests"] > runs["pilot"]["requests"] > 10
    rows = {(d["metric"], d["run"]): d for d in doc["deltas"]}
    # Production sends ~4x longer chat prompts, 2 kB RAG contexts and 3k-token documents
    # from regions up to 229 ms away: its p95 TTFT is higher, and the test says so.
    ttft = rows[("ttft_ms.p95", "production")]
    assert ttft["ratio"]["value"] > 1.3 and ttft["ratio"]["low"] > 1.0
    assert ttft["significant"] and ttft["p_adjusted"] < 0.05
    # Same mock decode speed in both: ITL does not differ by much.
    itl = rows[("itl_ms.p50", "production")]
    assert 0.8 < itl["ratio"]["value"] < 1.25
    # the baseline's SLO judged every request: the row exists with shares in [0, 1]
    miss = rows[("slo_miss_rate", "production")]
    assert 0.0 <= miss["value"] <= 1.0 and 0.0 <= miss["baseline"] <= 1.0
    assert any(
        "p95 TTFT is" in f and "higher in production than in pilot" in f for f in doc["findings"]
    )
    assert "p95 TTFT is" in proc.stdout
    # the new workloads are named, with the way to compare like with like
    assert any(
        "New workloads in production (not in pilot)" in f and "summarise" in f and "rag" in f
        for f in doc["findings"]
    )
    wl = {w["workload"]: w for w in doc["workloads"]}
    assert wl["chat"]["baseline_requests"] > 0 and wl["summarise"]["baseline_requests"] == 0
    for name in ("headline", "cdf", "percentiles", "failures", "cost"):
        assert (out / "charts" / f"compare_{name}.png").stat().st_size > 5_000
    html = (out / "compare.html").read_text()
    assert html.count("data:image/png;base64,") == 5
    assert "pilot vs production" in html and "Deltas and tests" in html
    # like with like: only the chat workload
    out2 = tmp_path / "chat"
    proc = _cli("compare", str(pilot), str(prod), "--workload", "chat", "--out", str(out2))
    assert proc.returncode == 0, proc.stderr
    doc2 = json.loads((out2 / "compare.json").read_text())
    assert doc2["subset"] == "workload chat"
    assert doc2["runs"][1]["requests"] < runs["production"]["requests"]
