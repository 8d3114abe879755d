"""The fault-kind registry: every kind has a behaviour, the docs' table and both ways in agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from loadkit.chaos import before_content, kinds, mid_stream
from loadkit.chaos.faults import FaultSpecError, fault_from_json, fault_from_scenario
from loadkit.scenario import ScenarioError, load_scenario

DOC = Path(__file__).resolve().parents[2] / "docs" / "chaos.md"

SCENARIO = """\
name: t
duration: 60s
regions:
  - {name: na, share: 50%}
  - {name: eu, share: 50%}
workloads:
  - {name: chat, prompt_tokens: 100, output_tokens: 50}
load:
  type: closed
  phases:
    - {kind: hold, users: 2, for: 60s}
faults:
"""

# A YAML value and the params value it becomes, per unit.
_YAML_VALUE: dict[str, tuple[str, Any]] = {
    "ms": ("250ms", 250.0),
    "tokens": ("3", 3),
    "fraction": ("50%", 0.5),
    "factor": ("2", 2.0),
    "status": ("503", 503),
}


def test_every_kind_has_a_behaviour_of_its_phase_and_every_behaviour_a_kind() -> None:
    early, mid = set(before_content.BEHAVIOURS), set(mid_stream.BEHAVIOURS)
    assert not early & mid
    assert early | mid == set(kinds.NAMES)
    for kind in kinds.KINDS:
        # a region outage refuses per request when its listener cannot close (rate < 1)
        expected = mid if kind.phase == "mid_stream" else early
        assert kind.name in expected, kind.name


def test_registry_is_consistent() -> None:
    assert len(set(kinds.NAMES)) == len(kinds.KINDS)
    assert kinds.BEFORE_CONTENT.isdisjoint(kinds.MID_STREAM)
    for kind in kinds.KINDS:
        assert kind.description, kind.name
        yaml_keys = [p.yaml_key for p in kind.params]
        assert len(set(yaml_keys)) == len(yaml_keys), kind.name
        assert set(kind.one_of) <= kind.keys, kind.name
        assert not kind.required & set(kind.one_of), kind.name
        for p in kind.params:
            # a params key means the same thing in every kind that has it
            shared = kinds.PARAMS[p.key]
            assert (p.type, p.unit, p.low, p.high, p.low_open, p.high_open, p.choices) == (
                shared.type,
                shared.unit,
                shared.low,
                shared.high,
                shared.low_open,
                shared.high_open,
                shared.choices,
            ), p.key
            assert p.unit in _YAML_VALUE, p.unit
            assert p.in_range(_YAML_VALUE[p.unit][1]), p.key


def _doc_table() -> dict[str, list[tuple[str, str, bool]]]:
    """kind -> its params as (YAML key, control-API key, required: bold) from docs/chaos.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Fault kinds", 1)[1]
    rows: dict[str, list[tuple[str, str, bool]]] = {}
    for line in section.split("\n\n", 2)[1].splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        found = re.finditer(r"(\*\*)?`([a-z_]+)`(?:\*\*)?(?: → `([a-z_]+)`)?", cells[1])
        rows[cells[0].strip("`")] = [
            (m.group(2), m.group(3) or m.group(2), bool(m.group(1))) for m in found
        ]
    return rows


def test_docs_table_matches_the_registry() -> None:
    """Kinds in order; per kind its YAML keys, the control-API key when it differs, and
    which are required (bold)."""
    table = _doc_table()
    assert list(table) == list(kinds.NAMES)
    for kind in kinds.KINDS:
        assert table[kind.name] == [(p.yaml_key, p.key, p.required) for p in kind.params]


def _full_fault(kind: kinds.FaultKind) -> tuple[str, dict[str, Any]]:
    """A YAML fault of `kind` with each parameter (one of a `one_of` group) and its params."""
    yaml: list[str] = [f"kind: {kind.name}", "at: 1s", "for: 5s"]
    params: dict[str, Any] = {}
    for p in kind.params:
        if p.key in kind.one_of[1:]:
            continue
        text, value = _YAML_VALUE[p.unit]
        yaml.append(f"{p.yaml_key}: {text}")
        params[p.key] = value
    if kind.needs_region:
        yaml.append("where: {region: eu}")
    return "  - {" + ", ".join(yaml) + "}\n", params


@pytest.mark.parametrize("kind", kinds.KINDS, ids=kinds.NAMES)
def test_a_scenario_fault_and_a_control_api_fault_agree(tmp_path: Path, kind: Any) -> None:
    line, params = _full_fault(kind)
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO + line)
    (fault,) = load_scenario(path).faults
    assert fault.kind == kind.name and dict(fault.params) == params
    spec = fault_from_scenario(fault)
    assert fault_from_json(spec.to_json()) == spec


@pytest.mark.parametrize("kind", kinds.KINDS, ids=kinds.NAMES)
def test_both_ways_in_require_the_same_params(tmp_path: Path, kind: Any) -> None:
    for p in kind.params:
        if not p.required:
            continue
        line, params = _full_fault(kind)
        path = tmp_path / "s.yaml"
        path.write_text(SCENARIO + re.sub(rf", {p.yaml_key}: [^,}}]+", "", line))
        with pytest.raises(ScenarioError, match=f"missing required key '{p.yaml_key}'"):
            load_scenario(path)
        where = {"region": "eu"} if kind.needs_region else {}
        del params[p.key]
        with pytest.raises(FaultSpecError, match=p.key):
            fault_from_json({"kind": kind.name, "params": params, "where": where})


@pytest.mark.parametrize("kind", ["cut", "reset_mid"])
def test_after_tokens_is_optional_both_ways(tmp_path: Path, kind: str) -> None:
    """The one rule where the two used to disagree: absent, the fault fires at the first
    content frame (the control API always took that; the YAML loader now does too)."""
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO + f"  - {{kind: {kind}, at: 1s, for: 5s}}\n")
    (fault,) = load_scenario(path).faults
    assert dict(fault.params) == {}
    assert fault_from_json({"kind": kind}).params == {}
    assert kinds.BY_NAME[kind].params[0].default == 0


def test_stall_needs_exactly_one_trigger_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO + "  - {kind: stall, at: 1s, for: 5s, after_tokens: 2, after: 1s}\n")
    with pytest.raises(ScenarioError, match="exactly one of `after_tokens` or `after`"):
        load_scenario(path)
    with pytest.raises(FaultSpecError, match="exactly one of after_tokens or after_ms"):
        fault_from_json({"kind": "stall", "params": {"after_tokens": 2, "after_ms": 5}})


def test_slow_tokens_factor_one_is_accepted_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO + "  - {kind: slow_tokens, at: 1s, for: 5s, factor: 1}\n")
    assert load_scenario(path).faults[0].params == {"factor": 1.0}
    assert fault_from_json({"kind": "slow_tokens", "params": {"factor": 1}}).params == {
        "factor": 1.0
    }
    with pytest.raises(FaultSpecError, match=r"factor: must be in \[1, 1000\]"):
        fault_from_json({"kind": "slow_tokens", "params": {"factor": 0.5}})
