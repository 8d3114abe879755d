"""Drills in `loadkit run`: the proxy between users and mock, faults at their (compressed) run
times, journaled; failures line up with the windows; abort and Ctrl-C leave no fault behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from loadkit.results.faults_schema import fault_windows, read_fault_events
from loadkit.results.reader import read_records
from tests.e2e.conftest import DRILL_CLIENT as CLIENT
from tests.e2e.conftest import Run
from tests.run_helpers import loadkit_cmd, run_cli, scenario, summary


def _proxy_gone(run_dir: Path) -> bool:
    env = json.loads((run_dir / "environment.json").read_text())
    url = env.get("chaos_proxy") or ""
    assert url, env
    u = urlsplit(url)
    try:
        with socket.create_connection((u.hostname, u.port), timeout=1):
            return False
    except OSError:
        return True


def test_a_compressed_drill_lines_up_with_its_journal(drill_run: Run) -> None:
    """The drill of tests/e2e/conftest.py (test_report_e2e.py reads its report)."""
    out = drill_run.out
    events = read_fault_events(out / "faults.csv")
    assert [(e.event, e.fault_id) for e in events] == [
        ("start", "na-down"),
        ("end", "na-down"),
        ("start", "storm"),
        ("end", "storm"),
        ("clear", ""),
    ]
    w = {fid: (s, e) for fid, _, s, e in fault_windows(events)}
    # 90 s compressed to 9 s: 20 s -> 2 s, 50 s -> 5 s, 70 s -> 7 s
    for fid, (start, end) in {"na-down": (2000, 5000), "storm": (5000, 7000)}.items():
        assert abs(w[fid][0] - start) < 300 and abs(w[fid][1] - end) < 300, (fid, w[fid])
    r = read_records(out / "requests.csv")
    t, region, outcome, fault = r["t_sent"], r["region"], r["outcome"], r["fault"]
    na_down = (region == "na") & (t > w["na-down"][0] + 100) & (t < w["na-down"][1] - 100)
    assert na_down.sum() > 10 and set(outcome[na_down]) == {"connect_error"}
    # every connect error is inside the outage window (plus what was in flight at its start)
    ce = outcome == "connect_error"
    assert ((t[ce] >= w["na-down"][0] - 1000) & (t[ce] <= w["na-down"][1])).all()
    # failover: the logical requests of the outage still succeeded in eu
    ids = set(r["request_id"][na_down])
    ok_eu = (region == "eu") & (outcome == "ok") & np.isin(r["request_id"], list(ids))
    assert len(set(r["request_id"][ok_eu])) >= 0.9 * len(ids)
    # storm: 503s only inside its window, each tagged; the untagged rest passed
    storm = fault == "storm"
    assert storm.sum() > 10 and set(r["status"][storm]) == {503}
    assert ((t[storm] >= w["storm"][0] - 50) & (t[storm] <= w["storm"][1] + 50)).all()
    inside = (t > w["storm"][0] + 100) & (t < w["storm"][1] - 100) & ~ce
    share = storm[inside].mean()
    assert 0.3 < share < 0.7, share
    # recovery: nothing fails after the last window
    after = t > w["storm"][1] + 200
    assert after.sum() > 20 and (outcome[after] == "ok").all()
    s = summary(out)
    assert s["stop_reason"] == "completed"
    chaos = s["chaos"]
    assert [x["fault_id"] for x in chaos["windows"]] == ["na-down", "storm"]
    assert chaos["steady_state"]["after"]["error_rate"] == 0.0
    assert chaos["abort"] is None
    assert _proxy_gone(out)


def test_an_abort_condition_stops_the_run_and_removes_the_faults(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        "abort",
        client={"retries": {"max": 0}},
        load={"type": "open", "process": "constant", "phases": [{"rate": "20/s", "for": "30s"}]},
        faults=[{"id": "boom", "at": "2s", "for": "20s", "kind": "http_error", "status": 500}],
        abort={"error_rate": "50%", "window": "3s", "min_requests": 10},
    )
    out = tmp_path / "run"
    t0 = time.monotonic()
    res = run_cli("run", str(path), "--out", str(out), timeout=150)
    took = time.monotonic() - t0
    assert res.returncode == 1, res.stdout + res.stderr
    assert "abort: error rate" in res.stdout and "Traceback" not in res.stderr
    s = summary(out)
    assert s["stop_reason"].startswith("aborted: error rate")
    assert s["chaos"]["abort"] is not None
    assert s["elapsed_s"] < 15 and took < 60
    events = read_fault_events(out / "faults.csv")
    assert [e.event for e in events] == ["start", "abort", "clear"]
    assert 2000 < events[1].t_ms < 8000
    assert _proxy_gone(out)


def test_ctrl_c_mid_drill_clears_every_fault(tmp_path: Path) -> None:
    path = scenario(
        tmp_path,
        "ctrlc",
        load={"type": "open", "process": "constant", "phases": [{"rate": "20/s", "for": "120s"}]},
        faults=[{"id": "slow", "at": "1s", "for": "100s", "kind": "latency", "delay": "50ms"}],
    )
    out = tmp_path / "run"
    proc = subprocess.Popen(
        loadkit_cmd("run", str(path), "--out", str(out)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        journal = out / "faults.csv"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if journal.exists() and "start,slow" in journal.read_text():
                break
            time.sleep(0.2)
        else:
            pytest.fail("the fault never started")
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stdout + stderr
    events = read_fault_events(out / "faults.csv")
    assert [e.event for e in events] == ["start", "clear"]
    assert summary(out)["stop_reason"] == "interrupted"
    r = read_records(out / "requests.csv")
    assert (r["fault"] == "slow").sum() > 5
    assert _proxy_gone(out)


def test_the_shipped_outage_drill_compressed(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    res = run_cli(
        "run",
        str(repo / "scenarios" / "outage-drill.yaml"),
        "--duration",
        "30s",
        "--users",
        "30",
        "--out",
        str(out),
        timeout=200,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    w = {fid: (s, e) for fid, _, s, e in fault_windows(read_fault_events(out / "faults.csv"))}
    # 40 min into 30 s: x 1/80. na-outage 10m+12m -> 7.5..16.5 s; storm 22m+6m -> 16.5..21 s
    # (15 s left too few closed-loop requests after slow-recovery's end to judge recovery)
    assert abs(w["na-outage"][0] - 7500) < 300 and abs(w["na-outage"][1] - 16500) < 300
    assert abs(w["storm-429"][0] - 16500) < 300 and abs(w["storm-429"][1] - 21000) < 300
    r = read_records(out / "requests.csv")
    t, region, outcome, fault = r["t_sent"], r["region"], r["outcome"], r["fault"]
    ce = outcome == "connect_error"
    assert ce.sum() > 0 and set(region[ce]) == {"na"}
    assert ((t[ce] >= w["na-outage"][0] - 1000) & (t[ce] <= w["na-outage"][1])).all()
    rl = outcome == "rate_limited"
    assert rl.sum() > 0 and set(fault[rl]) == {"storm-429"}
    assert ((t[rl] >= w["storm-429"][0] - 50) & (t[rl] <= w["storm-429"][1] + 50)).all()
    slow = fault == "slow-recovery"
    assert slow.sum() > 0 and set(region[slow]) == {"na"}
    last_end = max(e for _, e in w.values())
    after = t > last_end + 200
    assert after.sum() > 10 and (outcome[after] == "ok").all()
    s = summary(out)
    assert s["chaos"]["steady_state"]["after"]["within_slo"] is True


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_a_drill_reaches_a_target_given_in_any_base_url_form(
    tmp_path: Path, start_mock, suffix: str
) -> None:
    """docs/scenarios.md shows base_url with /v1: a drill must not send /v1/v1/... (404)."""
    from tests.run_helpers import FAST_OVERRIDES

    mock = start_mock(FAST_OVERRIDES)
    path = scenario(
        tmp_path,
        "v1drill",
        target={"base_url": mock.url + suffix, "model": "gpt-4o-mini"},
        client={**CLIENT, "failover": []},
        load={"type": "open", "process": "constant", "phases": [{"rate": "20/s", "for": "2s"}]},
        faults=[{"id": "e", "at": "0.5s", "for": "0.5s", "kind": "http_error", "status": 500}],
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = read_records(out / "requests.csv")
    status = rec["status"]
    fault = rec["fault"].astype(str)
    assert not (status == 404).any()
    outside = fault == ""
    assert outside.sum() >= 20 and (rec["outcome"][outside] == "ok").all()
    assert (status[~outside] == 500).all() and (~outside).sum() > 0
