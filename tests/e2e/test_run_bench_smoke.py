"""The benchmarks run end to end at a trivial size and write their JSON (structure, not speed)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.run_helpers import REPO


def test_bench_loadgen_smoke(tmp_path) -> None:
    out = tmp_path / "loadgen.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_loadgen", "--users", "20", "--seconds", "12",
         "--rounds", "1", "--step-ms", "50", "--tokens", "8", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    modes = [r["mode"] for r in data["rounds"]]
    assert modes == ["ceiling", "loadkit"]
    for r in data["rounds"]:
        assert r["requests"] > 0 and r["cpu_s"] > 0 and r["events"] == 8 * r["requests"]
    loadkit = data["rounds"][1]
    assert loadkit["ttft_err_ms"]["n"] > 0 and "p99" in loadkit["loop_lag_ms"]
    assert data["ratio_events_per_cpu_s"] > 0
    assert set(data["pass"]) == {"ratio", "ttft_err", "concurrency"}
    assert "loadkit / ceiling" in proc.stdout


def test_bench_openloop_smoke(tmp_path) -> None:
    out = tmp_path / "openloop.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_openloop", "--rates", "50", "--seconds", "2",
         "--rounds", "1", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert [r["mode"] for r in data["rounds"]] == ["floor", "loadkit"]
    floor, loadkit = data["rounds"]
    assert floor["n"] == 100 and loadkit["n"] == loadkit["expected"] == 100
    assert loadkit["ok_share"] == 1
    assert abs(data["by_rate"]["50"]["achieved_rate"] / 50 - 1) < 0.05
    assert data["pass"] == {"lag_p99_at_200": None}  # no 200/s round: no verdict
    assert "loadkit / floor" in proc.stdout
