"""What the run folder says besides the records: the scenario (SLOs, budget, planned peak),
the time scale it ran at, and the fault journal. Each part is optional: a report of a
folder without them still shows everything the records can show."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadkit.analysis.faults import from_journal
from loadkit.analysis.run import RunFacts
from loadkit.errors import UserError
from loadkit.results.run_folder import RunFolder


@dataclass(frozen=True)
class FolderFacts:
    facts: RunFacts
    scenario: Any | None
    environment: dict[str, Any]
    notes: tuple[str, ...]


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_scenario_of(folder: RunFolder) -> tuple[Any | None, str | None]:
    """The scenario as run (the folder's copy), else the original file named in run-config."""
    from loadkit.scenario import load_scenario

    tried: list[str] = []
    candidates = [folder.scenario_yaml]
    original = _json(folder.run_config).get("scenario_path")
    if original:
        candidates.append(Path(original))
    for path in candidates:
        if not path.exists():
            continue
        try:
            return load_scenario(path), None
        except UserError as exc:
            tried.append(str(exc))
    why = "; ".join(tried) if tried else "no scenario.yaml in the run folder"
    return None, f"scenario not available ({why}): no SLOs, budget or projection"


def _mean_users(phases: Any) -> tuple[float, float]:
    """(time-averaged users, peak users) of closed-loop phases."""
    prev = 0.0
    area = 0.0
    total = 0.0
    peak = 0.0
    for p in phases:
        u = float(p.users)
        if p.kind == "ramp":
            area += (prev + u) / 2 * p.duration_s
        elif p.kind == "spike":
            area += u * p.duration_s
            peak = max(peak, u)
            total += p.duration_s
            continue  # back to the previous level afterwards
        else:
            area += u * p.duration_s
        total += p.duration_s
        peak = max(peak, u)
        prev = u
    return (area / total if total else 0.0), peak


def planned_rates(scenario: Any) -> tuple[float | None, float | None, float | None]:
    """(peak requests/s, mean requests/s, planned cost in USD) of the uncompressed scenario."""
    from loadkit.scenario.model import ClosedLoad, OpenLoad
    from loadkit.scenario.plan import plan

    try:
        total = plan(scenario).total()
    except Exception:  # the plan is a nicety; the report must not fail for it
        return None, None, None
    dur = float(scenario.duration_s) or 1.0
    mean = total.requests / dur
    load = scenario.load
    peak: float | None = mean
    daily = _daily_peak_factor(scenario)
    if isinstance(load, OpenLoad) and load.phases:
        peak = max(max(p.rate_start, p.rate_end) for p in load.phases) * daily
    elif isinstance(load, ClosedLoad) and load.phases:
        avg, top = _mean_users(load.phases)
        peak = (mean * top / avg if avg > 0 else mean) * daily
    return peak, mean, total.cost_usd


def _daily_peak_factor(scenario: Any) -> float:
    """Busiest hour / mean hour of the regions' daily curves, each at its UTC offset."""
    import numpy as np

    spec = getattr(scenario.load, "daily", None)
    hourly = getattr(spec, "hourly", None)
    if not hourly or len(hourly) != 24:
        return 1.0
    h = np.asarray(hourly, dtype=np.float64)
    if h.mean() <= 0:
        return 1.0
    h = h / h.mean()
    hours = np.arange(24)
    agg = np.zeros(24)
    for r in scenario.regions:
        agg += r.share * h[(hours + round(r.utc_offset_h)) % 24]
    return float(agg.max() / agg.mean()) if agg.mean() > 0 else 1.0


def folder_facts(folder: RunFolder, window_s: float | None = None) -> FolderFacts:
    notes: list[str] = []
    env = _json(folder.environment_json)
    scenario, why = load_scenario_of(folder)
    if why:
        notes.append(why)
    try:
        from loadkit.results.faults_schema import read_fault_events

        faults = from_journal(read_fault_events(folder.faults_csv))
    except (OSError, ValueError, KeyError, UserError) as exc:
        faults = []
        notes.append(f"faults.csv unreadable ({exc}); fault windows not shown")
    peak = mean = planned = None
    if scenario is not None:
        peak, mean, planned_full = planned_rates(scenario)
        scale = float(env.get("time_scale") or 1.0)
        users = env.get("users_override")
        phases = getattr(scenario.load, "phases", ())
        top = max((float(getattr(p, "users", 0)) for p in phases), default=0.0)
        if users and top > 0:  # `--users N` scaled the closed-loop peak
            scale *= float(users) / top
        planned = planned_full * scale if planned_full is not None else None
    facts = RunFacts(
        slo=scenario.slo if scenario is not None else None,
        faults=tuple(faults),
        peak_requests_per_s=peak,
        mean_requests_per_s=mean,
        budget_usd=scenario.budget.max_usd if scenario is not None else None,
        budget_requests=scenario.budget.max_requests if scenario is not None else None,
        planned_cost_usd=planned,
        window_s=window_s,
        schedule=_json(folder.schedule_json) or None,
        max_lag_s=getattr(scenario.load, "max_schedule_lag_s", None) if scenario else None,
    )
    return FolderFacts(facts, scenario, env, tuple(notes))
