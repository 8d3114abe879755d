"""The scenario language's `abort:` section and scenario faults as the proxy runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadkit.chaos.faults import fault_from_json, fault_from_scenario
from loadkit.scenario import load_scenario
from loadkit.scenario.errors import ScenarioError

REPO = Path(__file__).resolve().parents[2]
BASE = """
name: t
workloads:
  - {name: chat, kind: chat, prompt_tokens: {dist: constant, value: 10},
     output_tokens: {dist: constant, value: 10}}
load: {type: closed, phases: [{kind: hold, users: 1, for: 1m}]}
"""


def _load(tmp_path: Path, extra: str):
    p = tmp_path / "s.yaml"
    p.write_text(BASE + extra, encoding="utf-8")
    return load_scenario(p)


def test_abort_section(tmp_path: Path) -> None:
    s = _load(tmp_path, "abort: {error_rate: 50%, ttft: {p95: 10s}, window: 20s}\n")
    assert s.abort is not None
    assert s.abort.error_rate == 0.5 and s.abort.ttft_ms == {"p95": 10000.0}
    assert s.abort.window_s == 20.0 and s.abort.min_requests == 20
    assert _load(tmp_path, "").abort is None


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("abort: {error_rate: 150%}\n", "abort.error_rate"),
        ("abort: {window: 10s}\n", "needs `error_rate`"),
        ("abort: {error_rate: 5%, ttft: {q95: 1s}}\n", "percentile"),
        ("abort: {error_rate: 5%, when: now}\n", "when"),
    ],
)
def test_bad_abort_sections_name_file_line_and_key(tmp_path: Path, extra: str, words: str) -> None:
    with pytest.raises(ScenarioError) as info:
        _load(tmp_path, extra)
    text = str(info.value)
    assert "s.yaml:" in text and words in text, text


def test_every_fault_of_the_shipped_scenarios_is_executable() -> None:
    n = 0
    for path in sorted((REPO / "scenarios").glob("*.yaml")):
        for fault in load_scenario(path).faults:
            spec = fault_from_scenario(fault)
            assert fault_from_json(spec.to_json()) == spec
            n += 1
    assert n >= 3


def test_validate_shows_the_abort_conditions(tmp_path: Path) -> None:
    from loadkit.scenario.plan import plan
    from loadkit.scenario.render import render

    s = _load(tmp_path, "abort: {error_rate: 50%, ttft: {p95: 10s}, window: 20s}\n")
    text = render(s, plan(s))
    assert "abort: stop the run when errors > 50% or TTFT p95 > 10s over the last 20s" in text
