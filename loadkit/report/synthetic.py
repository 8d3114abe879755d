"""A synthetic run folder with known structure: for tests, the report benchmark and trying
the report without running load. Seeded; vectorised so a million records take seconds.

Two regions (na 70%, eu 30%) of open-loop chat traffic; inside each fault window requests
of the matching region fail with the given probability (tagged as injected) and retry up
to twice, after a backoff, failing over to the other region for an outage; elsewhere a
small organic failure rate (timeouts, untagged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loadkit.results.faults_schema import FaultEvent, write_fault_events
from loadkit.results.run_folder import RunFolder
from loadkit.results.schema import COLUMNS, DEFAULTS, HEADER_LINE

PRICE_IN = 0.15e-6  # USD per prompt token (gpt-4o-mini list price, per 1M: $0.15)
PRICE_OUT = 0.60e-6  # per completion token ($0.60 per 1M)


@dataclass(frozen=True)
class SynthFault:
    fault_id: str
    kind: str  # "http_error" or "region_outage"
    region: str  # "" = every region
    start_s: float
    end_s: float
    fail_prob: float = 1.0


@dataclass(frozen=True)
class SynthRun:
    requests: int = 5_000
    duration_s: float = 300.0
    regions: Sequence[tuple[str, float, float]] = (("na", 0.7, 0.0), ("eu", 0.3, 90.0))
    faults: Sequence[SynthFault] = field(default_factory=tuple)
    organic_fail: float = 0.005
    open_loop: bool = True
    seed: int = 1
    ttft_median_ms: float = 300.0
    slow_after_fault_s: float = 0.0  # TTFT x3 for this long after each window (recovery)


SCENARIO = """\
# scenario as run (synthetic); secrets redacted
name: synthetic
seed: 1
description: Synthetic run written by loadkit.report.synthetic.
target:
  mock: hosted-api
  model: gpt-4o-mini
regions:
  - {{name: na, share: 70%}}
  - {{name: eu, share: 30%}}
workloads:
  - name: chat
    kind: chat
    prompt_tokens: {{dist: lognormal, median: 500, p90: 1400}}
    output_tokens: {{dist: lognormal, median: 120, p90: 400}}
load:
  type: open
  phases:
    - {{rate: {rate:.4g}/s, for: {dur:.0f}s}}
slo:
  ttft: {{p95: 1s}}
  e2e: {{p95: 10s}}
  error_rate: 1%
pricing:
  model: gpt-4o-mini
budget:
  max_usd: {budget}
"""


def generate(spec: SynthRun) -> dict[str, np.ndarray]:
    """Record columns (attempt rows), in send order."""
    rng = np.random.default_rng(spec.seed)
    n = spec.requests
    start = np.sort(rng.uniform(0.0, spec.duration_s * 1000.0, n))
    names = np.array([r[0] for r in spec.regions], dtype=object)
    shares = np.array([r[1] for r in spec.regions])
    rtt = np.array([r[2] for r in spec.regions])
    home = rng.choice(len(names), n, p=shares / shares.sum())
    prompt = np.maximum(1, rng.lognormal(np.log(500), 0.8, n)).astype(np.int64)
    comp = np.maximum(1, rng.lognormal(np.log(120), 0.9, n)).astype(np.int64)
    rid = np.char.add("r", np.arange(n).astype(str)).astype(object)
    rows: list[dict[str, np.ndarray]] = []
    alive = np.arange(n)
    t = start.copy()
    region = home.copy()
    for attempt in range(3):
        k = alive.size
        tt = t[alive]
        reg = region[alive]
        fault_tag = np.full(k, "", dtype=object)
        fail = rng.random(k) < spec.organic_fail
        outcome = np.where(fail, "timeout", "ok").astype(object)
        slow = np.ones(k)
        for f in spec.faults:
            inside = (tt >= f.start_s * 1000) & (tt < f.end_s * 1000)
            if f.region:
                inside &= names[reg] == f.region
            hit = inside & (rng.random(k) < f.fail_prob)
            fault_tag[hit] = f.fault_id
            outcome[hit] = "http_error" if f.kind != "region_outage" else "connect_error"
            fail |= hit
            if spec.slow_after_fault_s:
                after = (tt >= f.end_s * 1000) & (tt < (f.end_s + spec.slow_after_fault_s) * 1000)
                slow[after] = 3.0
        ttft = rng.lognormal(np.log(spec.ttft_median_ms), 0.35, k) * slow + rtt[reg]
        itl = rng.normal(15.0, 1.0, k)
        e2e = np.where(fail, rng.uniform(20, 200, k), ttft + itl * (comp[alive] - 1))
        ok = ~fail
        pt = np.where(ok, prompt[alive], 0)
        ct = np.where(ok, comp[alive], 0)
        rows.append(
            {
                "request_id": rid[alive],
                "attempt": np.full(k, attempt, dtype=np.int64),
                "region": names[reg],
                "t_intended": start[alive] if spec.open_loop else np.full(k, np.nan),
                "t_sent": tt,
                "sched_lag_ms": (
                    rng.exponential(2.0, k)
                    if spec.open_loop and attempt == 0
                    else np.full(k, np.nan)
                ),
                "ttft_ms": np.where(ok, ttft, np.nan),
                "e2e_ms": e2e,
                "itl_mean_ms": np.where(ok & (ct > 1), itl, np.nan),
                "itl_p99_ms": np.where(ok & (ct > 1), itl * 2, np.nan),
                "itl_max_ms": np.where(ok & (ct > 1), itl * 3, np.nan),
                "status": np.where(ok, 200, np.where(outcome == "http_error", 503, 0)),
                "outcome": outcome,
                "prompt_tokens": pt,
                "completion_tokens": ct,
                "cost_usd": pt * PRICE_IN + ct * PRICE_OUT,
                "fault": fault_tag,
            }
        )
        # the failed retry after a backoff; an outage fails over to the next region
        again = alive[fail]
        t[again] = tt[fail] + e2e[fail] + 500.0 * (2**attempt)
        outage_ids = [f.fault_id for f in spec.faults if f.kind == "region_outage"]
        outage = np.isin(fault_tag[fail], outage_ids)
        region[again[outage]] = (region[again[outage]] + 1) % len(names)
        alive = again
        if alive.size == 0:
            break
    cols = {c: np.concatenate([r[c] for r in rows]) for c in rows[0]}
    m = cols["attempt"].size
    cols["run_id"] = np.full(m, "synthetic", dtype=object)
    cols["worker"] = np.full(m, "w0", dtype=object)
    cols["workload"] = np.full(m, "chat", dtype=object)
    cols["session_id"] = cols["request_id"]
    cols["turn"] = np.zeros(m, dtype=np.int64)
    cols["model"] = np.full(m, "gpt-4o-mini", dtype=object)
    cols["endpoint"] = np.full(m, "chat", dtype=object)
    cols["error"] = np.where(cols["outcome"] == "ok", "", cols["outcome"]).astype(object)
    cols["cached_tokens"] = np.zeros(m, dtype=np.int64)
    cols["tokens_source"] = np.full(m, "server", dtype=object)
    cols["response_model"] = cols["model"]
    cols["reconnects"] = np.zeros(m, dtype=np.int64)
    cols["max_tokens"] = np.zeros(m, dtype=np.int64)  # none sent: no early-stop figure
    cols["finish_reason"] = np.full(m, "", dtype=object)
    cols["planned_prompt_tokens"] = np.zeros(m, dtype=np.int64)
    for name in COLUMNS:  # anything else at the record's defaults
        if name not in cols:
            cols[name] = np.full(m, DEFAULTS[name])
    order = np.argsort(cols["t_sent"], kind="stable")
    return {c: cols[c][order] for c in COLUMNS}


def _fmt(col: np.ndarray, kind: str) -> np.ndarray:
    if kind == "f":
        out = np.char.mod("%.3f", col)
        return np.where(np.isfinite(col), out, "")
    if kind == "c":
        return np.char.mod("%.10g", col)
    return col.astype(str)


def write_csv(path: Path, cols: dict[str, np.ndarray], chunk: int = 200_000) -> None:
    """requests.csv in the writer's format (3-decimal ms, empty cell for NaN)."""
    from loadkit.results.schema import FLOAT_COLUMNS

    kinds = {c: ("c" if c == "cost_usd" else "f" if c in FLOAT_COLUMNS else "s") for c in COLUMNS}
    n = cols["attempt"].size
    with path.open("w", encoding="utf-8") as fh:
        fh.write(HEADER_LINE)
        for a in range(0, n, chunk):
            parts = [_fmt(cols[c][a : a + chunk], kinds[c]) for c in COLUMNS]
            lines = parts[0].astype(object)
            for p in parts[1:]:
                lines = lines + "," + p.astype(object)
            fh.write("\n".join(lines.tolist()) + "\n")


def write_run(folder: Path, spec: SynthRun) -> Path:
    """A run folder: requests.csv, faults.csv (when there are faults), scenario.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    run = RunFolder(folder)
    write_csv(run.requests_csv, generate(spec))
    if spec.faults:
        events = []
        for f in spec.faults:
            events.append(FaultEvent(f.start_s * 1000, "start", f.fault_id, f.kind, f.region))
            events.append(FaultEvent(f.end_s * 1000, "end", f.fault_id, f.kind, f.region))
        write_fault_events(run.faults_csv, sorted(events, key=lambda e: e.t_ms))
    rate = spec.requests / spec.duration_s
    run.scenario_yaml.write_text(
        SCENARIO.format(rate=rate, dur=spec.duration_s, budget="20.00"), encoding="utf-8"
    )
    return folder
