"""An overloaded llama.cpp `llama-server` is never called GO (issue #24).

The issue's scenario: 12 arrivals/s of a 300-token prompt with 64 forced output tokens at a
server with 4 slots that serves about 3.6 of them a second, `max_in_flight: 12`. The
phase is 8 s instead of the issue's 15 s (the effect shows within seconds: the cap is full
after one second). Every planned arrival must be in requests.csv, sent or `not_sent`, and
the verdict names the cause. The same scenario at 2/s is kept up with: GO, all sent.
One llama-server for the module (the session's fixture).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from loadkit.results.reader import read_records
from tests.real_target import MODEL_NAME
from tests.run_helpers import run_cli, scenario, summary

CHAT = {
    "name": "chat",
    "kind": "chat",
    "prompt_tokens": 300,
    "output_tokens": 64,
    "max_tokens": 64,
    "extra_body": {"ignore_eos": True},
}
KEPT_UP = "the service kept up with the planned load"


def _run(tmp_path: Path, base_url: str, rate: str, seconds: int) -> tuple[str, Path]:
    path = scenario(
        tmp_path,
        "open-overload",
        seed=6,
        target={"base_url": base_url, "model": MODEL_NAME},
        workloads=[CHAT],
        load={
            "type": "open",
            "process": "poisson",
            "max_in_flight": 12,
            "phases": [{"rate": rate, "for": f"{seconds}s"}],
        },
        client={"timeouts": {"total": "8s"}},
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=240)
    return proc.stdout + proc.stderr, out


def test_twelve_per_second_is_no_go_with_every_arrival_recorded(
    tmp_path: Path, llama_server: str
) -> None:
    text, out = _run(tmp_path, llama_server, "12/s", 8)
    sched = json.loads((out / "schedule.json").read_text())
    rec = read_records(out / "requests.csv")
    outcome = rec["outcome"].astype(str)
    first = (rec["attempt"] == 0) & (rec["turn"] == 0)
    # every planned arrival has a row: sent, or not_sent with its intended time and no send
    assert int(first.sum()) == sched["planned"], (int(first.sum()), sched)
    assert sched["fired"] + sched["not_sent"] == sched["planned"]
    not_sent = outcome == "not_sent"
    assert int(not_sent.sum()) == sched["not_sent"] > sched["planned"] // 3
    assert np.isfinite(rec["t_intended"][not_sent]).all()
    assert np.isnan(rec["t_sent"][not_sent]).all()
    s = summary(out)
    o = s["offered"]
    assert o["planned"] == sched["planned"] and o["not_sent"] == sched["not_sent"]
    assert o["served_per_s"] < 0.6 * o["planned_per_s"], o
    assert o["sched_lag_ms"]["p95"] > 1000.0
    assert sched["cap_full_s"] > 3.0
    item = next(i for i in s["verdict"]["items"] if i["check"] == KEPT_UP)
    assert item["status"] == "no-go"
    assert s["verdict"]["decided_by"] == item["reason"]
    assert s["error_rate"] >= sched["not_sent"] / sched["planned"] - 1e-5  # counted as failed
    # the planned rate is the seeded Poisson schedule's own (8 s of it: 12/s give or take)
    planned = f"{o['planned_per_s']:.3g}/s planned, {o['served_per_s']:.3g}/s served: "
    assert f"readiness: NO-GO: {planned}" in text, text[-3000:]
    assert 9.0 < o["planned_per_s"] < 16.0
    assert f"{sched['not_sent']} of {sched['planned']} arrivals" in text
    assert "max_in_flight 12 was full for" in text
    assert "offered against served (arrivals):" in text


def test_two_per_second_is_kept_up_with_and_go(tmp_path: Path, llama_server: str) -> None:
    text, out = _run(tmp_path, llama_server, "2/s", 6)
    sched = json.loads((out / "schedule.json").read_text())
    rec = read_records(out / "requests.csv")
    assert sched["planned"] >= 5 and sched["not_sent"] == 0 and sched["skipped"] == {}
    assert sched["fired"] == sched["planned"] == rec.n
    assert set(rec["outcome"].astype(str)) == {"ok"}
    s = summary(out)
    item = next(i for i in s["verdict"]["items"] if i["check"] == KEPT_UP)
    assert item["status"] == "go", item
    assert s["offered"]["sched_lag_ms"]["p95"] < 1000.0
    assert "readiness: GO" in text, text[-3000:]
