"""docs/scenarios.md: its annotated example must validate and cover the whole language."""

from __future__ import annotations

import re
from pathlib import Path

from loadkit.scenario import load_scenario
from loadkit.scenario.build import TOP_KEYS
from loadkit.scenario.model import FAULT_KINDS, ClosedLoad

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def _example() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "docs/scenarios.md has no yaml example"
    return blocks[0]


def test_annotated_example_validates(tmp_path: Path) -> None:
    path = tmp_path / "example.yaml"
    path.write_text(_example())
    s = load_scenario(path)
    assert s.name == "support-bot-eu-launch"
    assert s.target.kind == "http" and s.target.api_key_env == "AZURE_OPENAI_API_KEY"
    assert [w.kind for w in s.workloads] == ["chat", "rag"]
    assert isinstance(s.load, ClosedLoad) and s.load.daily is not None
    assert len(s.faults) == 3 and s.budget.max_usd == 25.0
    assert s.pricing is not None and s.pricing.price.output_per_1m == 0.70


def test_example_and_reference_cover_the_language() -> None:
    example = _example()
    for key in TOP_KEYS:
        assert re.search(rf"^{key}:", example, flags=re.M), key
    text = DOC.read_text(encoding="utf-8")
    for kind in FAULT_KINDS:
        assert f"`{kind}`" in text, kind
