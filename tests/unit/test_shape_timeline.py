"""The run timeline from real scenarios: compression keeps rates and shape; daily curve; traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from loadkit.scenario import load_scenario
from loadkit.traffic.timeline import ClosedTimeline, OpenTimeline, open_plan

REPO = Path(__file__).resolve().parents[2]


def _write(tmp: Path, doc: dict) -> Path:
    path = tmp / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


BASE = {
    "name": "tl",
    "seed": 5,
    "target": {"mock": "hosted-api", "model": "gpt-4o-mini"},
    "regions": [{"name": "local", "share": "100%"}],
    "workloads": [{"name": "chat", "kind": "chat", "prompt_tokens": 10, "output_tokens": 5}],
}


def test_open_loop_compression_keeps_rates(tmp_path) -> None:
    doc = {
        **BASE,
        "load": {
            "type": "open",
            "phases": [
                {"rate": "10/s", "for": "100s"},
                {"from": "10/s", "to": "50/s", "for": "100s"},
            ],
        },
    }
    sc = load_scenario(_write(tmp_path, doc))
    full = open_plan(sc, 1.0).t_s
    short = open_plan(sc, 0.1).t_s
    assert full.max() < 200 and short.max() < 20
    # Same shape: the share of arrivals in the first half (the flat phase) is kept...
    share_full = np.mean(full < 100)
    share_short = np.mean(short < 10)
    assert share_short == pytest.approx(share_full, abs=0.06)
    # ...and so is the rate: ten times fewer requests in a ten times shorter run.
    assert len(short) == pytest.approx(len(full) / 10, rel=0.15)
    # Same seed, same plan.
    assert np.array_equal(open_plan(sc, 0.1).t_s, short)
    tl = OpenTimeline(sc, 0.1, processes=2)
    assert tl.duration_s == pytest.approx(20.0, abs=0.1)
    assert tl.tick(5.0, object) == (2, 2.0, [object])  # one driver per process
    assert tl.tick(21.0, object) is None


def test_trace_compression_keeps_rate() -> None:
    sc = load_scenario(REPO / "scenarios" / "trace-replay.yaml")
    full = open_plan(sc, 1.0)
    k = 0.25
    short = open_plan(sc, k)
    span_full, span_short = float(full.t_s.max()), float(short.t_s.max())
    assert span_short == pytest.approx(span_full * k, rel=0.1)
    rate_full = len(full) / span_full
    rate_short = len(short) / span_short
    assert rate_short == pytest.approx(rate_full, rel=0.25)


def test_closed_loop_daily_curve_modulates_users(tmp_path) -> None:
    doc = {
        **BASE,
        "regions": [{"name": "eu", "share": "100%", "utc_offset": 1}],
        "load": {
            "type": "closed",
            "phases": [{"kind": "step", "users": 100, "for": "24h"}],
            "daily": {"curve": "business-hours"},
        },
    }
    sc = load_scenario(_write(tmp_path, doc))
    tl = ClosedTimeline(sc, scale=1 / 3600, users_override=None)  # a day in 24 s
    assert tl.duration_s == pytest.approx(24.0)
    by_hour = [tl.tick(h + 0.5)[0] for h in range(24)]  # run second h = UTC hour h
    assert max(by_hour) > 3 * min(by_hour)  # the business-hours swing
    peak_utc = int(np.argmax(by_hour))
    assert 8 <= peak_utc + 1 <= 17  # local (UTC+1) working hours
