"""What a scenario will do, computed without sending anything (`loadkit validate`).

Expected counts are estimates: open-loop and trace volumes follow from the rates and the
trace; closed-loop volume depends on how fast the target answers, so it is derived from an
assumed response time (the mock profile's latency model, or 0.5 s + 20 ms per output token
for a real service) plus think time. Token figures come from the same seeded session
sampler the run uses; cost applies the scenario's price to them. Prefix caching is assumed
to hit for the system prefix and for history carried forward in a session.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loadkit.cost import Price, cost_usd_array, lookup_price
from loadkit.scenario import bridge
from loadkit.scenario.model import ClosedLoad, OpenLoad, Scenario, TraceLoad, Workload
from loadkit.workload.distributions import sample_counts
from loadkit.workload.plan import rng_for
from loadkit.workload.regions import region_curves
from loadkit.workload.sessions import sample_sessions

SAMPLE_SESSIONS = 20_000
GRID = 2_000
EMBEDDING_MODEL = "text-embedding-3-small"
HTTP_TTFT_S = 0.5
HTTP_S_PER_TOKEN = 0.020
_PLAN_STREAM = 7_000  # rng_for(seed, _PLAN_STREAM, k): never used by a run


@dataclass(frozen=True)
class PerRequest:
    """One workload's averages per session, from sampled sessions."""

    turns: float  # turns per session
    calls_per_turn: int  # 2 for RAG (embeddings + chat)
    prompt_tokens: float  # per chat/completions/embeddings call (server-seen prompt)
    cached_tokens: float
    output_tokens: float
    embed_tokens: float  # per RAG turn (its embeddings call)
    think_s: float  # per session, total
    service_s: float  # assumed response time per turn (closed loop)


@dataclass(frozen=True)
class Cell:
    """Expected totals for one region x workload."""

    region: str
    workload: str
    sessions: float
    requests: float
    prompt_tokens: float
    cached_tokens: float
    output_tokens: float
    cost_usd: float | None


@dataclass(frozen=True)
class ScenarioPlan:
    cells: tuple[Cell, ...]
    per_request: dict[str, PerRequest]
    assumption: str

    def total(self, by: str | None = None, name: str | None = None) -> Cell:
        cells = [c for c in self.cells if by is None or getattr(c, by) == name]
        costs = [c.cost_usd for c in cells]
        return Cell(
            region=name if by == "region" else "",
            workload=name if by == "workload" else "",
            sessions=sum(c.sessions for c in cells),
            requests=sum(c.requests for c in cells),
            prompt_tokens=sum(c.prompt_tokens for c in cells),
            cached_tokens=sum(c.cached_tokens for c in cells),
            output_tokens=sum(c.output_tokens for c in cells),
            cost_usd=None if any(c is None for c in costs) else float(sum(costs)),  # type: ignore[arg-type]
        )


def plan(scenario: Scenario) -> ScenarioPlan:
    service, assumption = _service_model(scenario)
    per = {w.name: _per_request(scenario, w, k, service) for k, w in enumerate(scenario.workloads)}
    sessions = _sessions(scenario, per)  # (regions, workloads)
    cells = []
    for i, region in enumerate(scenario.regions):
        price = scenario.pricing.price_for(region.name) if scenario.pricing else None
        for k, w in enumerate(scenario.workloads):
            cells.append(_cell(region.name, w, sessions[i, k], per[w.name], price))
    if isinstance(scenario.load, TraceLoad):
        assumption = "trace replay: counts from the trace, tokens from its rows"
        cells = _trace_tokens(scenario, cells)
    return ScenarioPlan(tuple(cells), per, assumption)


# -- per-workload averages ------------------------------------------------------------------


def _service_model(scenario: Scenario) -> tuple[object, str]:
    """A function (prompt, output tokens) -> seconds, and a sentence saying what it assumes."""
    target = scenario.target
    if target.kind == "mock" and target.mock_profile:
        try:
            from mocks.profile import apply_overrides, load_profile

            prof = apply_overrides(load_profile(target.mock_profile), dict(target.mock_overrides))

            def mock_time(prompt: np.ndarray, output: np.ndarray) -> np.ndarray:
                prefill = prof.prefill_overhead_ms + prof.prefill_ms_per_token * prompt
                return (prefill + prof.decode_step_ms * output) * prof.latency_scale / 1000.0

            return mock_time, (
                f"closed loop: response times from the mock profile {target.mock_profile} "
                f"(prefill {prof.prefill_overhead_ms:g} ms + "
                f"{prof.prefill_ms_per_token:g} ms/token, decode {prof.decode_step_ms:g} ms/token, "
                "no queueing)"
            )
        except Exception:  # the profile is the mock's business; fall back to the generic model
            pass

    def http_time(prompt: np.ndarray, output: np.ndarray) -> np.ndarray:
        return HTTP_TTFT_S + HTTP_S_PER_TOKEN * output + 0.0 * prompt

    return http_time, (
        f"closed loop: assumes {HTTP_TTFT_S:g} s to first token + "
        f"{HTTP_S_PER_TOKEN * 1000:g} ms per output token"
    )


def _per_request(scenario: Scenario, w: Workload, k: int, service: object) -> PerRequest:
    rng = rng_for(scenario.seed, _PLAN_STREAM, k)
    if w.kind == "embeddings":
        prompt = sample_counts(w.prompt_tokens, rng, SAMPLE_SESSIONS, low=1)
        return PerRequest(1.0, 1, float(prompt.mean()), 0.0, 0.0, 0.0, 0.0, 0.05)
    sessions = sample_sessions(bridge.session_workload(w), SAMPLE_SESSIONS, rng)
    output = sessions.output_tokens.astype(np.float64)
    if w.max_tokens is not None:
        output = np.minimum(output, w.max_tokens)
    context = sessions.context_tokens().astype(np.float64)
    own = sessions.prompt_tokens + sessions.rag_context_tokens()
    # Cache hits assumed: the shared system prefix, plus the carried history when kept.
    cached = context - own if w.history else np.full_like(context, float(w.system_prefix_tokens))
    embed = 0.0
    extra_s = 0.0
    if w.rag is not None:
        embed = float(sample_counts(w.rag.embed_tokens, rng, SAMPLE_SESSIONS, low=1).mean())
        extra_s = float(np.mean(sessions.retrieval_delay_s)) + 0.05
    service_s = float(np.mean(service(context, output))) + extra_s  # type: ignore[operator]
    n = sessions.n_sessions
    return PerRequest(
        turns=sessions.n_turns / n,
        calls_per_turn=2 if w.rag is not None else 1,
        prompt_tokens=float(context.mean()),
        cached_tokens=float(cached.mean()),
        output_tokens=float(output.mean()),
        embed_tokens=embed,
        think_s=float(sessions.think_s.sum()) / n,
        service_s=service_s,
    )


# -- sessions per region x workload -----------------------------------------------------------


def _weights(scenario: Scenario) -> np.ndarray:
    w = np.array([wl.weight for wl in scenario.workloads], dtype=np.float64)
    return w / w.sum()


def _sessions(scenario: Scenario, per: dict[str, PerRequest]) -> np.ndarray:
    load = scenario.load
    weights = _weights(scenario)
    regions = bridge.region_loads(scenario)
    clock = bridge.day_clock(scenario)
    dur = scenario.duration_s
    if isinstance(load, OpenLoad):
        curves = region_curves(bridge.rate_curve(load), regions, clock, until_s=dur)
        per_region = np.array([c.expected_count(dur) for c in curves])
        return per_region[:, None] * weights[None, :]
    if isinstance(load, ClosedLoad):
        t = (np.arange(GRID) + 0.5) * dur / GRID
        users = np.array([bridge.users_at(load, x) for x in t])
        rows = []
        for r in regions:
            user_s = float(np.sum(users * r.share * r.multiplier(t, clock)) * dur / GRID)
            row = []
            for wl, frac in zip(scenario.workloads, weights, strict=True):
                p = per[wl.name]
                rtt = scenario.region(r.name).rtt_ms / 1000.0
                session_s = p.turns * p.calls_per_turn * (p.service_s + rtt) + p.think_s
                row.append(user_s * frac / max(session_s, 1e-3))
            rows.append(row)
        return np.array(rows)
    trace = _trace(scenario)
    n = float(len(trace)) * load.rate_scale
    shares = np.array([r.share for r in regions])
    return n * shares[:, None] * weights[None, :]


def _trace(scenario: Scenario):  # -> loadkit.workload.traces.Trace
    from loadkit.workload.traces import read_trace

    load = scenario.load
    assert isinstance(load, TraceLoad)
    trace = read_trace(load.path, load.format)
    if load.window is not None:
        trace = trace.window(*load.window)
    trace = trace.time_scale(load.time_scale)
    return trace.take(trace.t_s <= scenario.duration_s)


def _trace_tokens(scenario: Scenario, cells: list[Cell]) -> list[Cell]:
    """Trace rows carry their own token counts: use their means instead of the workload's."""
    trace = _trace(scenario)
    if not len(trace):
        return cells
    prompt = float(trace.input_tokens.mean())
    output = float(trace.output_tokens.mean())
    out = []
    for c in cells:
        w = scenario.workload(c.workload)
        price = scenario.pricing.price_for(c.region) if scenario.pricing else None
        per = PerRequest(
            1.0, 1, prompt + w.system_prefix_tokens, w.system_prefix_tokens, output, 0.0, 0.0, 0.0
        )
        out.append(_cell(c.region, w, c.sessions, per, price))
    return out


def _cell(region: str, w: Workload, sessions: float, p: PerRequest, price: Price | None) -> Cell:
    turns = sessions * p.turns
    requests = turns * p.calls_per_turn
    prompt = turns * p.prompt_tokens
    cached = turns * p.cached_tokens
    output = turns * p.output_tokens
    cost = None
    if price is not None:
        cost = float(
            cost_usd_array(price, np.array([prompt]), np.array([cached]), np.array([output]))[0]
        )
        if p.embed_tokens:
            emb = lookup_price(EMBEDDING_MODEL) or price
            cost += float(
                cost_usd_array(emb, np.array([turns * p.embed_tokens]), np.zeros(1), np.zeros(1))[0]
            )
    return Cell(
        region, w.name, sessions, requests, prompt + turns * p.embed_tokens, cached, output, cost
    )
