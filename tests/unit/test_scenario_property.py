"""Property: whatever the file holds, the loader returns a Scenario or raises ScenarioError.

A mutated scenario that still loads must also plan and render (what `loadkit validate` does).

Nothing else may escape (no KeyError, TypeError, RecursionError, ...): a user's file must
never produce a traceback.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadkit.scenario import Scenario, ScenarioError, load_scenario
from loadkit.scenario.plan import plan
from loadkit.scenario.render import render

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "scenarios" / "outage-drill.yaml").read_text())

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

unit_strings = st.sampled_from(
    ["5m", "-3s", "90", "12/s", "0/s", "50%", "150%", "1h30m", "250ms", "", "p95", "5xx", "na",
     "eu", "chat", "${X}", "sk-abcdefghijklmnopqrst", "lognormal", "closed", "open", "trace",
     "hosted-api", "region_outage", "http_error", "NaN", ".inf", "null", "~", "yes"]
)  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    unit_strings,
)
keys = st.one_of(
    st.sampled_from(
        [
            "name",
            "seed",
            "duration",
            "target",
            "regions",
            "workloads",
            "load",
            "client",
            "faults",
            "slo",
            "pricing",
            "budget",
            "extends",
            "type",
            "phases",
            "share",
            "kind",
            "dist",
            "for",
            "users",
            "rate",
            "at",
            "where",
            "region",
            "mock",
            "model",
            "daily",
            "hourly",
            "curve",
        ]
    ),
    st.text(max_size=8),
)
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=6)
    ),
    max_leaves=30,
)


def _load_text(text: str | bytes, with_plan: bool = False) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            result = load_scenario(path)
        except ScenarioError as exc:
            assert "\n" not in str(exc)
            assert str(exc).startswith(str(path)) or str(exc).startswith(tmp)
        else:
            assert isinstance(result, Scenario)
            if with_plan:  # a valid scenario must also plan and render without error
                assert render(result, plan(result))


@SETTINGS
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_arbitrary_text(text: str) -> None:
    _load_text(text)


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    _load_text(data)


@SETTINGS
@given(trees)
def test_arbitrary_structures(tree: Any) -> None:
    _load_text(yaml.safe_dump(tree, allow_unicode=True))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


ALL_PATHS = _paths(BASE)[1:]


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(ALL_PATHS), trees), min_size=1, max_size=3))
def test_mutated_valid_scenario(mutations: list[tuple[tuple, Any]]) -> None:
    """A real scenario with a few values replaced by anything: deep checks get exercised."""
    doc = copy.deepcopy(BASE)
    for path, value in mutations:
        node = doc
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    _load_text(yaml.safe_dump(doc, allow_unicode=True), with_plan=True)
