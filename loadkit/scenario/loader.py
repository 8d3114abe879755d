"""`load_scenario(path)`: read, merge `extends:`, validate, return a frozen `Scenario`."""

from __future__ import annotations

import os
from pathlib import Path

from loadkit.scenario.build import build_scenario
from loadkit.scenario.model import Scenario
from loadkit.scenario.source import read_tree


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """The validated scenario, or a `ScenarioError` (one line: file:line: key.path: problem)."""
    root = read_tree(path)
    return build_scenario(root, Path(path).resolve())
