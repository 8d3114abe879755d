"""`loadkit validate`'s plan: expected traffic, tokens and cost."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadkit.cost import cost_usd_array
from loadkit.scenario import load_scenario
from loadkit.scenario.plan import plan
from loadkit.scenario.render import render
from loadkit.workload.distributions import LogNormal

ROOT = Path(__file__).resolve().parents[2]

OPEN = """\
name: t
seed: {seed}
target:
  base_url: https://api.example.com/v1
  model: gpt-4o-mini
regions:
  - {{name: na, share: 70%, utc_offset: -5}}
  - {{name: apac, share: 30%, utc_offset: 7}}
workloads:
  - name: a
    weight: 3
    prompt_tokens: {{dist: lognormal, median: 500, p90: 1500}}
    output_tokens: 100
  - {{name: b, weight: 1, prompt_tokens: 200, output_tokens: {{dist: uniform, low: 50, high: 150}}}}
load:
  type: open
  phases:
    - {{rate: 10/s, for: 1m}}
{daily}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_open_loop_counts_follow_rate_shares_and_weights(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, OPEN.format(seed=1, daily="")))
    p = plan(s)
    assert p.total().sessions == pytest.approx(600)
    assert p.total("region", "na").sessions == pytest.approx(420)
    assert p.total("region", "apac").sessions == pytest.approx(180)
    assert p.total("workload", "a").sessions == pytest.approx(450)
    assert p.total("workload", "b").requests == pytest.approx(150)
    # token means from the seeded sampler: output constant 100 for a, uniform 50..150 for b
    assert p.total("workload", "a").output_tokens == pytest.approx(450 * 100)
    assert p.total("workload", "b").output_tokens == pytest.approx(150 * 100, rel=0.02)
    # lognormal median 500 / p90 1500: mean = median * exp(sigma^2 / 2), sigma = ln 3 / z90
    mean = LogNormal(500, 1500).mean()
    assert 715 < mean < 730
    assert p.total("workload", "a").prompt_tokens / 450 == pytest.approx(mean, rel=0.03)


def test_a_full_compressed_day_keeps_each_regions_volume(tmp_path: Path) -> None:
    daily = "  daily: {curve: business-hours, start_utc_hour: 0}"
    s = load_scenario(write(tmp_path, OPEN.format(seed=1, daily=daily)))
    p = plan(s)
    # the curve has mean 1 over 24 h, and the whole day is compressed into the run
    assert p.total("region", "na").sessions == pytest.approx(420, rel=0.01)
    assert p.total("region", "apac").sessions == pytest.approx(180, rel=0.01)


def test_same_seed_same_plan_other_seed_other_tokens(tmp_path: Path) -> None:
    a = plan(load_scenario(write(tmp_path, OPEN.format(seed=1, daily=""), "a.yaml")))
    b = plan(load_scenario(write(tmp_path, OPEN.format(seed=1, daily=""), "b.yaml")))
    c = plan(load_scenario(write(tmp_path, OPEN.format(seed=2, daily=""), "c.yaml")))
    assert a.cells == b.cells
    assert a.cells != c.cells
    assert a.total().prompt_tokens == pytest.approx(c.total().prompt_tokens, rel=0.03)


def test_cost_is_the_formula_applied_to_the_expected_tokens(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, OPEN.format(seed=1, daily="")))
    p = plan(s)
    assert s.pricing is not None
    for region in ("na", "apac"):
        t = p.total("region", region)
        expected = cost_usd_array(
            s.pricing.price_for(region),
            [t.prompt_tokens],
            [t.cached_tokens],
            [t.output_tokens],
        )[0]
        assert t.cost_usd == pytest.approx(expected)


def test_closed_loop_uses_the_assumed_response_time(tmp_path: Path) -> None:
    text = """\
name: t
target: {base_url: 'https://api.example.com/v1', model: gpt-4o-mini}
workloads:
  - {name: a, prompt_tokens: 100, output_tokens: 100}
load:
  type: closed
  phases:
    - {kind: hold, users: 2, for: 1m}
"""
    p = plan(load_scenario(write(tmp_path, text)))
    # 0.5 s to first token + 100 x 20 ms = 2.5 s per request; 2 users for 60 s
    assert p.total().requests == pytest.approx(2 * 60 / 2.5, rel=1e-6)
    assert "0.5 s to first token" in p.assumption


def test_trace_replay_plan_counts_the_trace_rows() -> None:
    s = load_scenario(ROOT / "scenarios" / "trace-replay.yaml")
    lines = (ROOT / "scenarios" / "traces" / "azure_conv_example.csv").read_text().splitlines()
    p = plan(s)
    assert p.total().requests == pytest.approx(len(lines) - 1)
    assert "trace replay" in p.assumption


@pytest.mark.parametrize("name", ["quickstart", "production", "outage-drill", "trace-replay"])
def test_rendered_plan_has_every_section(name: str) -> None:
    s = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
    text = render(s, plan(s), f"scenarios/{name}.yaml")
    for head in ("scenario", "timeline", "phases", "faults", "expected traffic", "cost", "slo"):
        assert any(line.startswith(head) for line in text.splitlines()), head
    for region in s.regions:
        assert f"  {region.name} " in text
    for fault in s.faults:
        assert fault.id[:10] in text
    assert max(len(line) for line in text.splitlines()) < 200
