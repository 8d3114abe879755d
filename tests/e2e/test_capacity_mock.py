"""End to end: `loadkit capacity` on the mock finds the knee its profile implies.

With closed-loop users and no think time, the user count is the concurrency the mock sees.
Up to `max_num_seqs` every request gets a slot at once (TTFT = prefill + one decode step,
about 45 ms here); one user more and each new request waits for a running one to finish,
so its TTFT grows by a share of a whole answer (80 tokens x ~7 ms, over 500 ms). The p95
TTFT SLO (300 ms: wide margins on both sides for a busy machine) breaks at
max_num_seqs + 1, so the capacity is max_num_seqs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from mocks.profile import apply_overrides, load_profile

OVERRIDES = {"max_num_seqs": 4, "output_tokens": {"dist": "fixed", "value": 80}}


def test_capacity_finds_max_num_seqs(tmp_path: Path) -> None:
    profile = apply_overrides(load_profile("vllm-h100"), OVERRIDES)
    knee = profile.max_num_seqs
    # the expected gap: below the knee TTFT is prefill + a step; above it, a queue wait
    base_ttft_ms = profile.prefill_overhead_ms + 200 * profile.prefill_ms_per_token
    answer_ms = 80 * (profile.decode_step_ms + profile.decode_step_ms_per_seq * (knee - 1))
    assert base_ttft_ms + profile.decode_step_ms < 60 and answer_ms > 500
    scenario = tmp_path / "small.yaml"
    scenario.write_text(
        yaml.safe_dump(
            {
                "name": "capacity-small",
                "seed": 3,
                "target": {
                    "mock": "vllm-h100",
                    "model": "meta-llama/Llama-3.1-8B-Instruct",
                    "overrides": OVERRIDES,
                },
                "workloads": [
                    {
                        "name": "chat",
                        "kind": "chat",
                        "prompt_tokens": 200,
                        "output_tokens": 80,
                        "max_tokens": 80,
                    }
                ],
                "load": {
                    "type": "closed",
                    "spawn_rate": "10/s",
                    "phases": [{"kind": "step", "users": 6, "for": "10s"}],
                },
                "slo": {"ttft": {"p95": "300ms"}, "error_rate": "1%"},
            },
            sort_keys=False,
        )
    )
    out = tmp_path / "out"
    levels = f"{knee // 2},{knee},{knee + 1},{knee * 2}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadkit.cli",
            "capacity",
            str(scenario),
            "--out",
            str(out),
            "--levels",
            levels,
            "--step-duration",
            "6s",
        ],
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((out / "capacity.json").read_text())
    loads = [s["load"] for s in doc["steps"]]
    assert loads == [knee // 2, knee, knee + 1], proc.stdout  # stopped at the first breach
    assert doc["capacity"] == knee, proc.stdout
    assert doc["throughput_knee"] == knee
    below, at, above = doc["steps"]
    assert at["ttft_p95_ms"] < 300 < above["ttft_p95_ms"]
    assert above["breached"] == ["ttft_ms.p95"]
    # throughput stops growing past the knee: half the users, half the rate
    assert at["ok_requests_per_s"] > 1.6 * below["ok_requests_per_s"]
    assert above["ok_requests_per_s"] < 1.15 * at["ok_requests_per_s"]
    assert doc["planned_peak"] == 6 and doc["peak_over_capacity"] == 1.5
    assert "needs 1.5x the capacity you tested" in proc.stdout
    assert f"step 3: {knee + 1} users" in proc.stdout and "BREACHED ttft_ms.p95" in proc.stdout
    for s in doc["steps"]:
        assert (Path(s["run_dir"]) / "requests.csv").exists()
        assert (Path(s["run_dir"]) / "summary.json").exists()
    assert (out / "charts" / "knee.png").stat().st_size > 10_000
    assert "data:image/png;base64," in (out / "capacity.html").read_text()
    # the capacity step against the first breach, compared with CIs
    assert doc["knee_compare"] == "knee-compare/compare.html"
    knee_doc = json.loads((out / "knee-compare" / "compare.json").read_text())
    ttft = next(d for d in knee_doc["deltas"] if d["metric"] == "ttft_ms.p95")
    assert ttft["significant"] and ttft["ratio"]["low"] > 2
