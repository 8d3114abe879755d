"""The fault timeline driver: run times (scaled), journal rows, abort conditions, clean-up."""

from __future__ import annotations

import math
from pathlib import Path

from loadkit.chaos.driver import AbortWatch, abort_window_s, timeline
from loadkit.results.schema import HEADER_LINE, RequestRecord, to_csv_line
from loadkit.scenario.model import Abort, Fault, FaultWhere
from tests.records import record

FAULTS = (
    Fault("storm", at_s=10, for_s=20, kind="http_error", rate=0.4, params={"status": 429}),
    Fault("eu-down", at_s=20, for_s=20, kind="region_outage", where=FaultWhere(region="eu")),
    Fault("late", at_s=30, for_s=10, kind="stall", params={"after_tokens": 5}),
)


def _rec(t_ms: float, outcome: str = "ok", ttft: float = 100.0) -> RequestRecord:
    failed = outcome != "ok"
    return record(
        run_id="r",
        request_id="q",
        session_id="",
        endpoint="/v1/chat/completions",
        t_sent=t_ms,
        ttft_ms=math.nan if failed else ttft,
        e2e_ms=200.0,
        itl_mean_ms=math.nan,
        itl_p99_ms=math.nan,
        itl_max_ms=math.nan,
        status=500 if failed else 200,
        outcome=outcome,
        prompt_tokens=1,
        completion_tokens=1,
        cost_usd=0.0,
    )


def test_timeline_scales_and_puts_ends_first() -> None:
    steps = timeline(FAULTS, scale=0.1)
    got = [(round(s.t_s, 6), s.event, s.spec.id) for s in steps]
    assert got == [
        (1.0, "start", "storm"),
        (2.0, "start", "eu-down"),
        (3.0, "end", "storm"),
        (3.0, "start", "late"),
        (4.0, "end", "eu-down"),
        (4.0, "end", "late"),
    ]


def test_abort_watch_error_rate_and_ttft(tmp_path: Path) -> None:
    csv_path = tmp_path / "requests.csv"
    csv_path.write_text(HEADER_LINE)
    watch = AbortWatch(Abort(error_rate=0.5, ttft_ms={"p95": 1000.0}, min_requests=10), csv_path, 5)
    with csv_path.open("a") as fh:
        for i in range(20):
            fh.write(to_csv_line(_rec(i * 100.0, "ok" if i % 3 else "http_error")))
        fh.write(to_csv_line(_rec(2100.0, "aborted")))
    assert watch.check(2100.0) is None  # 7/20 failed, TTFT fine
    with csv_path.open("a") as fh:
        for i in range(20):
            fh.write(to_csv_line(_rec(2100.0 + i * 100, "timeout")))
        fh.write("half a li")  # a line still being written is left for later
    reason = watch.check(4000.0)
    assert reason is not None and "error rate" in reason and "50%" in reason
    slow = AbortWatch(Abort(ttft_ms={"p95": 1000.0}, min_requests=5), csv_path, 5)
    csv_path.write_text(HEADER_LINE + "".join(to_csv_line(_rec(i, ttft=3000.0)) for i in range(6)))
    assert "TTFT p95 3.00s" in (slow.check(10.0) or "")
    # a window with too few attempts never aborts; old rows leave the window
    assert AbortWatch(Abort(error_rate=0.0), csv_path, 5).check(10.0) is None
    assert abort_window_s(Abort(error_rate=0.5, window_s=30), 0.025) == 5.0
    assert abort_window_s(Abort(error_rate=0.5, window_s=30), 1.0) == 30.0
