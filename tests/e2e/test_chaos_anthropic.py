"""Mid-stream faults inside Anthropic's Messages API stream, through the chaos proxy: the
proxy counts content the way the client's Anthropic decoder does (text deltas), cuts after
the third one, and sends Anthropic's own `event: error` where an error frame is asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loadkit.results.reader import read_records
from tests.run_helpers import run_cli, scenario


def test_cut_and_error_frame_inside_anthropic_streams(tmp_path: Path) -> None:
    chat = {"kind": "chat", "prompt_tokens": 60, "output_tokens": 40, "max_tokens": 40}
    path = scenario(
        tmp_path,
        "anthropic-faults",
        target={"mock": "hosted-api", "api": "anthropic", "model": "claude-sonnet-4-5"},
        workloads=[{"name": "cut", **chat}, {"name": "err", **chat}],
        load={
            "type": "closed",
            "spawn_rate": "4/s",
            "phases": [{"kind": "hold", "users": 4, "for": "6s"}],
        },
        faults=[
            {
                "at": "0s",
                "for": "6s",
                "kind": "cut",
                "after_tokens": 3,
                "where": {"workload": "cut"},
            },
            {
                "at": "0s",
                "for": "6s",
                "kind": "error_frame",
                "after_tokens": 2,
                "where": {"workload": "err"},
            },
        ],
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), "--no-calibrate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = read_records(out / "requests.csv")
    assert set(rec["api"].astype(str)) == {"anthropic"}
    workload = rec["workload"].astype(str)
    outcome = rec["outcome"].astype(str)
    cut, err = workload == "cut", workload == "err"
    assert cut.sum() >= 3 and err.sum() >= 3
    # cut after three text deltas: no message_stop, so the client says the stream was cut
    assert set(outcome[cut]) == {"stream_cut"}
    assert np.isfinite(rec["ttft_ms"][cut]).all()  # the first deltas did arrive
    assert (rec["completion_tokens"][cut] <= 6).all()  # estimated from three short deltas
    # Anthropic's error event (api_error), not OpenAI's `data: {"error": ...}`
    assert set(outcome[err]) == {"stream_error"}
    assert all("api_error" in e for e in rec["error"].astype(str)[err])
