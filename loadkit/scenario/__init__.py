"""Scenario files: YAML -> validated, frozen `Scenario`; errors carry file:line and key path."""

from __future__ import annotations

from loadkit.scenario.errors import ScenarioError
from loadkit.scenario.loader import load_scenario
from loadkit.scenario.model import Scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario"]
