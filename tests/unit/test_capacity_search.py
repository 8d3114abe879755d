"""Capacity search logic without sending traffic: levels, step scenarios, search, verdicts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from loadkit.cli import main as cli_main
from loadkit.errors import UserError
from loadkit.orchestration import capacity as capmod
from loadkit.orchestration.capacity import CapacityOptions, StepResult
from loadkit.scenario import load_scenario
from tests.records import record

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"


def _opts(path: Path, **kw: object) -> CapacityOptions:
    return CapacityOptions(scenario=path, out=Path("unused"), **kw)  # type: ignore[arg-type]


def test_levels_from_the_scenarios_own_steps() -> None:
    sc = load_scenario(SCENARIOS / "capacity.yaml")
    assert capmod.plan_levels(sc, _opts(SCENARIOS / "capacity.yaml")) == [8, 16, 32, 64, 128, 256]
    assert capmod.planned_peak(sc) == 256


def test_levels_series_and_explicit() -> None:
    sc = load_scenario(SCENARIOS / "pilot.yaml")
    # no step phases: from an eighth of the peak (20 users), doubling
    levels = capmod.plan_levels(sc, _opts(SCENARIOS / "pilot.yaml", max_steps=5))
    assert levels == [2, 5, 10, 20, 40]
    levels = capmod.plan_levels(sc, _opts(SCENARIOS / "pilot.yaml", start=3, factor=3, max_steps=3))
    assert levels == [3, 9, 27]
    assert capmod.plan_levels(sc, _opts(SCENARIOS / "pilot.yaml", levels=(16, 4, 4.4))) == [4, 16]
    with pytest.raises(UserError, match="--factor"):
        capmod.plan_levels(sc, _opts(SCENARIOS / "pilot.yaml", factor=1.0))


def test_planned_peak_includes_the_daily_curve() -> None:
    sc = load_scenario(SCENARIOS / "production.yaml")
    assert sc.load.daily is not None
    assert capmod.planned_peak(sc) == pytest.approx(400 * max(sc.load.daily.hourly))


def test_trace_scenario_is_refused() -> None:
    sc = load_scenario(SCENARIOS / "trace-replay.yaml")
    with pytest.raises(UserError, match="trace replay"):
        capmod.load_kind(sc)


@pytest.mark.parametrize("parent", ["production.yaml", "capacity.yaml", "outage-drill.yaml"])
def test_step_scenario_extends_the_parent_with_one_level(tmp_path: Path, parent: str) -> None:
    step_file = tmp_path / "logs" / "step-01.yaml"
    step_file.parent.mkdir()
    step_file.write_text(
        capmod.step_yaml(SCENARIOS / parent, step_file, "users", 12, 7.5, spawn_rate=2.0)
    )
    sc = load_scenario(step_file)
    base = load_scenario(SCENARIOS / parent)
    assert sc.duration_s == 7.5
    assert [(p.kind, p.users, p.duration_s) for p in sc.load.phases] == [("step", 12, 7.5)]
    assert sc.load.daily is None  # a step holds one level: no daily swing
    assert sc.load.spawn_rate == 12  # every user within about a second
    assert sc.slo == base.slo and sc.target == base.target and sc.regions == base.regions
    assert sc.faults == ()  # fault windows belong to the parent's timeline


def test_open_loop_step_scenario(tmp_path: Path) -> None:
    parent = tmp_path / "open.yaml"
    parent.write_text(
        yaml.safe_dump(
            {
                "name": "open",
                "target": {"mock": "hosted-api", "model": "gpt-4o-mini"},
                "workloads": [
                    {"name": "c", "kind": "chat", "prompt_tokens": 10, "output_tokens": 5}
                ],
                "load": {"type": "open", "phases": [{"rate": "4/s", "for": "1m"}]},
            }
        )
    )
    sc = load_scenario(parent)
    assert capmod.load_kind(sc) == "rate" and capmod.planned_peak(sc) == 4
    assert capmod.plan_levels(sc, _opts(parent, max_steps=4)) == [0.5, 1.0, 2.0, 4.0]
    step = tmp_path / "s.yaml"
    step.write_text(capmod.step_yaml(parent, step, "rate", 2.5, 5, None))
    phases = load_scenario(step).load.phases
    assert [(p.rate_start, p.rate_end, p.duration_s) for p in phases] == [(2.5, 2.5, 5.0)]


def _fake(capacity: float, calls: list[float]):
    """A service that meets the SLO up to `capacity` and saturates there."""

    def run_step(level: float, index: int) -> StepResult:
        calls.append(level)
        ok = level <= capacity
        return StepResult(
            index=index,
            level=level,
            run_dir=f"steps/{index}",
            ok=ok,
            breached=() if ok else ("ttft_ms.p95",),
            checks=(),
            warmup_s=1.0,
            window_s=4.0,
            requests=100,
            ok_requests_per_s=min(level, capacity) * 2.0,
            goodput_per_s=min(level, capacity) * 2.0 if ok else 1.0,
            output_tokens_per_s=0.0,
            error_rate=0.0,
            ttft_p95_ms=100.0 if ok else 100.0 * level / capacity,
            itl_p95_ms=10.0,
            e2e_p95_ms=500.0,
            cost_per_ok_request=0.001,
        )

    return run_step


def test_search_stops_at_the_first_breach() -> None:
    calls: list[float] = []
    steps = capmod.search([2, 4, 8, 16, 32], _fake(9, calls))
    assert calls == [2, 4, 8, 16]
    assert [s.ok for s in steps] == [True, True, True, False]


def test_search_bisects_between_good_and_bad() -> None:
    calls: list[float] = []
    steps = capmod.search([2, 4, 8, 16, 32], _fake(11, calls), bisect=5)
    assert calls[:4] == [2, 4, 8, 16]
    assert calls[4:] == [12, 10, 11]  # 12 bad, 10 good, 11 good; then 11..12 is closed
    r = capmod.conclude("fake", "users", steps, peak=20.0, slo={})
    assert r.capacity == 11
    assert "needs 1.8x the capacity you tested" in r.headroom
    assert r.throughput_knee is not None and 8 <= r.throughput_knee <= 12


def test_search_when_everything_passes_or_nothing_does() -> None:
    steps = capmod.search([1, 2, 4], _fake(100, []))
    r = capmod.conclude("fake", "users", steps, peak=2.0, slo={})
    assert r.all_passed and r.capacity == 4
    assert r.headroom.startswith("every tested load met every SLO, up to 4 users (2.0x")
    steps = capmod.search([1, 2, 4, 8], _fake(5, []))
    r = capmod.conclude("fake", "users", steps, peak=2.0, slo={})
    assert r.headroom == "4 users met every SLO: 2.0x the planned peak of 2 (headroom 100%)"
    steps = capmod.search([5, 10], _fake(1, []), bisect=3)
    r = capmod.conclude("fake", "users", steps, peak=2.0, slo={})
    assert r.capacity == 1  # bisection below the first level: 2 bad, 1 good
    steps = capmod.search([5, 10], _fake(0.5, []), bisect=0)
    r = capmod.conclude("fake", "users", steps, peak=2.0, slo={})
    assert r.capacity is None and "no tested load" in r.headroom


def test_measure_step_ignores_the_warmup(tmp_path: Path) -> None:
    from loadkit.results.schema import HEADER_LINE, to_csv_line
    from loadkit.scenario.model import Slo

    rows = []
    for i in range(40):
        t = i * 100.0  # one request every 100 ms for 4 s
        ttft = 900.0 if t < 1000 else 100.0  # slow only during warm-up
        rec = record(
            run_id="r",
            request_id=f"q{i}",
            attempt=1,
            region="local",
            session_id=f"s{i}",
            turn=1,
            endpoint="/v1/chat/completions",
            t_sent=t,
            sched_lag_ms=0.0,
            ttft_ms=ttft,
            e2e_ms=ttft + 50,
            itl_mean_ms=5.0,
            itl_p99_ms=math.nan,
            itl_max_ms=math.nan,
            prompt_tokens=10,
            completion_tokens=5,
        )
        rows.append(to_csv_line(rec))
    run_dir = tmp_path / "step"
    run_dir.mkdir()
    (run_dir / "requests.csv").write_text(HEADER_LINE + "".join(rows))
    slo = Slo(ttft_ms={"p95": 200.0}, error_rate=0.01)
    res = capmod.measure_step(run_dir, slo, level=4, index=1, warmup_s=1.0, end_s=4.0)
    assert res.ok and res.requests == 30 and res.ttft_p95_ms == pytest.approx(100.0)
    assert res.ok_requests_per_s == pytest.approx(10.0)
    assert res.goodput_per_s == pytest.approx(10.0)  # every steady request met 200 ms
    res = capmod.measure_step(run_dir, slo, level=4, index=1, warmup_s=0.0, end_s=4.0)
    assert not res.ok and res.breached == ("ttft_ms.p95",)


@pytest.mark.charts
def test_capacity_report_from_fake_steps(tmp_path: Path) -> None:
    from loadkit.report.capacity import write_capacity_report

    steps = capmod.search([1, 2, 4, 8, 16], _fake(6, []), bisect=2)
    r = capmod.conclude("fake", "users", steps, 10.0, {"ttft_ms": {"p95": 300.0}})
    page = write_capacity_report(r, tmp_path)
    text = page.read_text()
    assert "data:image/png;base64," in text and "Highest load that met every SLO" in text
    assert (tmp_path / "charts" / "knee.png").stat().st_size > 10_000
    doc = capmod.capacity_json(r, CapacityOptions(Path("x"), tmp_path), 1.0, 2.0)
    json.dumps(doc)
    assert doc["capacity"] == 6 and doc["peak_over_capacity"] == pytest.approx(10 / 6, abs=1e-3)
    assert np.isfinite(doc["steps"][0]["ok_requests_per_s"])


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["capacity", str(SCENARIOS / "trace-replay.yaml"), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: capacity: a trace replay") and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        cli_main(["capacity", str(SCENARIOS / "pilot.yaml"), "--out", "o", "--levels", "4,x"])
    assert exc.value.code == 2
    rc = cli_main(
        [
            "capacity",
            str(SCENARIOS / "pilot.yaml"),
            "--out",
            str(tmp_path / "o2"),
            "--step-duration",
            "5s",
            "--warmup",
            "5s",
        ]
    )
    assert rc == 2 and "--warmup" in capsys.readouterr().err
