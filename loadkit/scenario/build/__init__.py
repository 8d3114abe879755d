"""Located YAML tree -> validated, frozen `Scenario` (every check names file:line and key path).

One module per top-level key (or group of keys); this module checks the top level and puts
the sections together. The sections keep their old private names (`_target`, `_faults`, ...)
so that changes made against the single-file build.py carry over line for line.
"""

from __future__ import annotations

from pathlib import Path

from loadkit.scenario.build.client import _client
from loadkit.scenario.build.distributions import distribution
from loadkit.scenario.build.endpoints import _endpoints, check_references
from loadkit.scenario.build.faults import _faults
from loadkit.scenario.build.load import MAX_PHASES, _duration, _load
from loadkit.scenario.build.pricing import _budget, _pricing
from loadkit.scenario.build.regions import SHARE_TOLERANCE, _regions
from loadkit.scenario.build.slo import _abort, _slo
from loadkit.scenario.build.target import (
    DEFAULT_MOCK_MODEL,
    KNOWN_MOCK_PROFILES,
    _check_target_regions,
    _target,
)
from loadkit.scenario.build.workloads import _workloads
from loadkit.scenario.fields import Field
from loadkit.scenario.model import Scenario
from loadkit.scenario.request_fields import prompt_cache
from loadkit.scenario.source import Value

__all__ = [
    "DEFAULT_MOCK_MODEL",
    "KNOWN_MOCK_PROFILES",
    "MAX_PHASES",
    "SHARE_TOLERANCE",
    "TOP_KEYS",
    "build_scenario",
    "distribution",
]

TOP_KEYS = (
    "name",
    "seed",
    "duration",
    "description",
    "target",
    "endpoints",
    "regions",
    "workloads",
    "load",
    "client",
    "faults",
    "slo",
    "abort",
    "pricing",
    "budget",
    "prompt_cache",
)


def build_scenario(root: Value, source_path: Path | None) -> Scenario:
    top = Field(root, "").mapping(TOP_KEYS, required=("name", "workloads", "load"))
    base_dir = source_path.parent if source_path is not None else Path(".")
    name = top.req("name").name()
    seed = top.opt("seed", lambda f: f.integer(low=0, high=2**63 - 1), 0)
    description = top.opt("description", lambda f: f.string(allow_empty=True), "")
    target = _target(top.get("target"), base_dir)
    regions = _regions(top.get("regions"))
    region_names = tuple(r.name for r in regions)
    target = _check_target_regions(top, target, region_names)
    endpoints = _endpoints(top.get("endpoints"), target.kind == "mock", region_names)
    check_references(top, regions, endpoints)
    workloads = _workloads(top.req("workloads"), target, base_dir)
    load, load_duration = _load(top.req("load"), base_dir)
    duration_s = _duration(top, load, load_duration)
    client = _client(top.get("client"), (*region_names, *endpoints))
    faults = _faults(
        top.get("faults"),
        duration_s,
        (*region_names, *endpoints),  # a named endpoint has a listener of its own too
        [w.name for w in workloads],
        tuple(u.name for u in target.upstreams),
    )
    slo = _slo(top.get("slo"))
    abort = _abort(top.get("abort"))
    pricing = _pricing(top.get("pricing"), target, region_names)
    budget = _budget(top.get("budget"))
    cache_mode = top.opt("prompt_cache", prompt_cache, "cold")
    return Scenario(
        name=name,
        seed=seed,
        duration_s=duration_s,
        description=description.strip(),
        target=target,
        regions=regions,
        workloads=workloads,
        load=load,
        client=client,
        faults=faults,
        slo=slo,
        pricing=pricing,
        budget=budget,
        source_path=source_path,
        abort=abort,
        prompt_cache=cache_mode,  # type: ignore[arg-type]
        endpoints=endpoints,
    )
