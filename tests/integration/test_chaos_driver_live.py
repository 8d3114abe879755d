"""The drill driver against a real chaos proxy: the timeline applied, journaled, aborted."""

from __future__ import annotations

import time
from pathlib import Path

from loadkit.chaos.driver import AbortWatch, FaultDriver, Journal, timeline
from loadkit.results.faults_schema import fault_windows, read_fault_events
from loadkit.results.schema import HEADER_LINE, to_csv_line
from loadkit.scenario.model import Abort
from tests.chaos_support import mock_and_proxy
from tests.unit.test_chaos_driver import FAULTS, _rec


def test_driver_applies_the_timeline_journals_it_and_clears(tmp_path: Path) -> None:
    with mock_and_proxy(tmp_path) as (_, proxy):
        journal = Journal(tmp_path / "faults.csv")
        t0 = time.perf_counter()
        driver = FaultDriver(
            proxy.control, timeline(FAULTS, 0.03), journal, lambda: time.perf_counter() - t0
        )
        driver.start()
        seen: list[tuple[float, frozenset[str], bool]] = []
        while time.perf_counter() - t0 < 1.4:
            st = proxy.control.status()
            ids = frozenset(f["id"] for f in st["faults"])
            seen.append((time.perf_counter() - t0, ids, st["regions"]["eu"]["down"]))
            time.sleep(0.02)
        driver.stop()
        final = proxy.control.status()
    assert final["faults"] == [] and not final["regions"]["eu"]["down"]
    # what the proxy had active, sampled: storm alone, then with eu-down (region closed) ...
    assert any(ids == {"storm"} for _, ids, _ in seen)
    assert any(ids == {"storm", "eu-down"} and down for _, ids, down in seen)
    assert any(ids == {"eu-down", "late"} for _, ids, _ in seen)
    assert seen[-1][1] == frozenset()
    events = read_fault_events(tmp_path / "faults.csv")
    assert [(e.event, e.fault_id) for e in events] == [
        ("start", "storm"),
        ("start", "eu-down"),
        ("end", "storm"),
        ("start", "late"),
        ("end", "eu-down"),
        ("end", "late"),
        ("clear", ""),
    ]
    storm = events[0]
    assert storm.kind == "http_error" and storm.rate == 0.4 and storm.params == {"status": 429}
    assert events[1].region == "eu"
    windows = {w[0]: (w[2], w[3]) for w in fault_windows(events)}
    for fid, (lo, hi) in {"storm": (300, 900), "eu-down": (600, 1200), "late": (900, 1200)}.items():
        start, end = windows[fid]
        assert lo - 5 <= start <= lo + 150 and hi - 5 <= end <= hi + 150, (fid, start, end)


def test_abort_stops_the_drill_and_removes_every_fault(tmp_path: Path) -> None:
    csv_path = tmp_path / "requests.csv"
    csv_path.write_text(HEADER_LINE)
    with mock_and_proxy(tmp_path) as (_, proxy):
        journal = Journal(tmp_path / "faults.csv")
        t0 = time.perf_counter()
        reasons: list[str] = []
        watch = AbortWatch(Abort(error_rate=0.5, min_requests=5), csv_path, 5)
        driver = FaultDriver(
            proxy.control,
            timeline(FAULTS, 0.01),
            journal,
            lambda: time.perf_counter() - t0,
            abort=watch,
            on_abort=reasons.append,
            poll_s=0.05,
        )
        driver.start()
        time.sleep(0.25)
        assert proxy.control.status()["faults"]  # the drill is on
        with csv_path.open("a") as fh:
            for _i in range(6):
                fh.write(to_csv_line(_rec((time.perf_counter() - t0) * 1000, "http_error")))
        deadline = time.monotonic() + 5
        while not reasons and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.control.status()["faults"] == []
        driver.stop()
    assert reasons and driver.abort_reason == reasons[0]
    events = read_fault_events(tmp_path / "faults.csv")
    assert [e.event for e in events][-2:] == ["abort", "clear"]
    assert "error rate" in events[-2].params["reason"]
    assert [e.event for e in events].count("clear") == 1
