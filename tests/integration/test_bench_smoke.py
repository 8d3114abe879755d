"""The mock benchmark runs end to end at a trivial size and writes its JSON (not timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.template import _steps, synthetic_template

REPO = Path(__file__).resolve().parents[2]
SERVERS = ("mock", "bare-stream", "bare-ticker", "bare-wheel")


def test_bench_mock_tiny_run_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    cmd = [
        sys.executable,
        "-m",
        "bench.bench_mock",
        "--levels", "4",
        "--step-ms", "20",
        "--tokens", "6",
        "--refine", "0",
        "--hold-streams", "6",
        "--hold-step-ms", "20",
        "--hold-tokens", "4",
        "--warmup", "0.1",
        "--window", "0.5",
        "--max-ramp", "0.1",
        "--retries", "0",
        "--quiet-wait", "0",
        "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())

    assert [p["name"] for p in doc["phases"]] == ["sweep-20ms", "hold"]
    sweep = doc["phases"][0]
    assert sweep["template_source"] == "captured from the mock"
    # role + first token, then one token per step, the last step adds finish, usage, [DONE]
    assert sweep["events_per_stream"] == 6 + 1 + 3
    assert sweep["steps_per_stream"] == 5

    points = doc["points"]
    assert {(p["phase"], p["server"]) for p in points} == {
        (phase, s) for phase in ("sweep-20ms", "hold") for s in SERVERS
    }
    for p in points:
        # every stream the client finished had exactly the template's events: the client's
        # event counting agrees with what each server really sent
        assert p["errors"] == {}, p
        assert p["completed_streams"] > 0, p
        assert p["events_per_s"] > 0, p
        assert p["open_streams_max"] == p["streams"], p
        assert p["pacing_p99_ms"] >= p["pacing_p50_ms"] >= 0.0, p
        assert p["server_cpu"] >= 0.0 and p["client_cpu"] >= 0.0, p
        assert p["tries"] == 1 and isinstance(p["noisy"], bool), p

    summary = doc["summary"]
    phase = summary["phases"]["sweep-20ms"]
    for crit in ("lateness", "gap"):
        assert set(phase[crit]["best"]) == set(SERVERS)
        assert set(phase[crit]["ratio_by_baseline"]) == set(SERVERS) - {"mock"}
    assert set(summary["hold"]) == set(SERVERS)
    assert summary["targets"]["open_streams_at_least"] == 5000
    assert "highest events/s" in proc.stdout and "wrote" in proc.stdout


def test_template_steps_from_arrival_times() -> None:
    # two events with the first token, one per 20 ms step after, the last three together
    t = [1.000, 1.0001, 1.013, 1.033, 1.0531, 1.0531, 1.0531]
    assert _steps(t, 0.020) == (0, 0, 1, 2, 3, 3, 3)
    assert _steps([2.0, 2.0], 0.020) == (0, 0)


def test_synthetic_template_shape() -> None:
    tpl = synthetic_template(5, 20.0)
    assert len(tpl.events) == 5 + 1 + 3
    assert tpl.steps == (0, 0, 1, 2, 3, 4, 4, 4, 4)
    assert all(e.startswith(b"data: ") and e.endswith(b"\n\n") for e in tpl.events)
    assert tpl.events[-1] == b"data: [DONE]\n\n"


def test_bench_mock_embeddings_quick_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "emb.json"
    cmd = [sys.executable, "-m", "bench.bench_mock_embeddings", "--quick", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    rows = {r["phase"]: r for r in doc["rows"]}
    assert set(rows) == {"A", "B"} and doc["summary"]["healthy"]
    for r in rows.values():
        assert r["errors"] == {} and r["events"] > 0 and r["gap_p99_ms"] >= 0.0, r
    # B really ran embeddings beside the streams (256 inputs x 1,536 floats, ~8 MB each)
    assert rows["A"]["emb_done"] == 0 and rows["B"]["emb_done"] >= 1
    assert rows["B"]["emb_mean_mb"] > 5 and rows["B"]["emb_errors"] == []
    assert "B/A" in proc.stdout and "wrote" in proc.stdout
