"""Open loop through `loadkit run`: real mock, real Locust, one process.

At 100 requests/s the achieved rate is within 1% of the target and the schedule lag does
not build up; latency is also reported from the intended time.

The scheduler's precision is bench/bench_openloop.py's to measure, side by side with a bare
gevent timer: its target is lag p99 under 10 ms at 200/s on a quiet 2-core machine (5.5 ms
measured while this was written, on a machine busy with other suites). The bounds here are
6x that target, loose enough for the 10-40 ms single spikes a shared VM gives, tight
enough that a real regression fails: a lag that builds up (a schedule no longer kept) or a
scheduler that waits for answers reaches hundreds of milliseconds within a second.
"""

from __future__ import annotations

import numpy as np

from loadkit.results.reader import read_records
from tests.run_helpers import run_cli, scenario, summary


def test_open_loop_100_per_second(tmp_path) -> None:
    path = scenario(
        tmp_path,
        "open100",
        load={
            "type": "open",
            "process": "constant",
            "max_in_flight": 1000,
            "phases": [{"rate": "100/s", "for": "6s"}],
        },
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = read_records(out / "requests.csv")
    assert len(rec) >= 595  # 6 s x 100/s, every arrival sent
    assert set(rec["outcome"].tolist()) == {"ok"}
    t_int = np.sort(rec["t_intended"])
    t_sent = np.sort(rec["t_sent"])
    target = 100.0
    achieved = (len(t_sent) - 1) / ((t_sent[-1] - t_sent[0]) / 1000.0)
    assert abs(achieved / target - 1) < 0.01, achieved
    assert np.allclose(np.diff(t_int), 10.0, atol=1e-3)  # the schedule itself: every 10 ms
    lag = rec["sched_lag_ms"]
    assert np.all(lag >= 0)
    # Lag is the load generator's own delay: it must not build up (the schedule is kept), and
    # on a quiet 2-core VM single spikes of 10-40 ms happen (measured: p50 1.5-2.6 ms, p99
    # 10-35 ms, at this and the previous release alike), so the tail bar is a loose one here;
    # precision is the benchmark's to measure (bench/bench_loadgen.py, loop lag).
    p50, p95, p99 = np.percentile(lag, [50, 95, 99])
    assert p50 < 5.0 and p95 < 20.0 and p99 < 60.0, (p50, p95, p99)
    # not building up: the last second's arrivals are as punctual as the run's
    last = lag[rec["t_intended"] >= t_int[-1] - 1000.0]
    assert last.size >= 90 and np.median(last) < 5.0, np.median(last)
    s = summary(out)
    assert s["open_loop"] and s["stop_reason"] == "completed"
    assert s["requests"] == len(rec)
    # latency from the intended time includes the lag
    assert s["ttft_from_intended_ms"]["p50"] >= s["ttft_ms"]["p50"]
    assert "schedule lag" in proc.stdout and "TTFT from intended" in proc.stdout


def test_slow_service_does_not_slow_arrivals(tmp_path) -> None:
    # Answers take ~1 s while arrivals come every 20 ms: a closed loop would send a handful.
    slow = {
        "prefill_overhead_ms": 1000,
        "decode_step_ms": 2,
        "jitter": {"sigma": 0.0, "step_sigma": 0.0, "tail_prob": 0.0},
    }
    path = scenario(
        tmp_path,
        "slow",
        target={"mock": "hosted-api", "model": "gpt-4o-mini", "overrides": slow},
        load={"type": "open", "process": "constant", "phases": [{"rate": "50/s", "for": "3s"}]},
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = read_records(out / "requests.csv")
    assert len(rec) == 150
    assert np.percentile(rec["sched_lag_ms"], 99) < 50
    assert np.median(rec["ttft_ms"]) > 900
