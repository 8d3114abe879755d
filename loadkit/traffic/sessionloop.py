"""One session's turns, the same for closed-loop users and open-loop arrivals.

A session is a workload's sampled plan (`loadkit.workload.sessions.SessionPlan`): turns with
think time between them, the conversation history carried into each next prompt (with the
reply text the server really sent), and for RAG workloads an embeddings call on the
question, the retrieval delay, then the chat call with the retrieved context. A failed
logical request (after the client's retries and failover) ends the session, the embeddings
call of a RAG turn included: without retrieved context there is no question to ask, as in a
real RAG application.

What the two loops differ in is the caller's: closed-loop users (`users.py`) ask admission
for every turn and send when ready; open-loop arrivals (`opensessions.py`) were admitted by
the scheduler for their first turn, which carries the arrival's intended time, and later
turns are due when the user is ready (end of the previous turn + think time). Free of
Locust imports, so the tests can import it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import gevent
import numpy as np

from loadkit.traffic.calls import plan_call, sizing_of
from loadkit.traffic.client import LLMClient
from loadkit.traffic.served import ResponseHeaders
from loadkit.workload import prefixblocks, prompts
from loadkit.workload.salt import salted
from loadkit.workload.sessions import SessionPlan

# The embeddings model of RAG turns unless the run context names one (`ctx.embed_model`).
DEFAULT_EMBED_MODEL = "text-embedding-3-small"


def session_client(
    ctx: Any, environment: Any, seed: int | np.random.Generator, pool_size: int | None = None
) -> LLMClient:
    """The client a closed-loop user or an open-loop process sends its sessions through."""
    return LLMClient(
        environment,
        ctx.routes or ctx.endpoints,
        ctx.scenario.client,
        headers=ctx.headers,
        sink=ctx.record,
        run_t0=ctx.run_t0,
        run_id=ctx.run_id,
        worker=str(ctx.worker),
        price=ctx.price_for,
        rtt_ms=ctx.rtt_ms,
        seed=seed,
        pool_size=pool_size,
        response_headers=ResponseHeaders.of(ctx.scenario.target),
        keys=ctx.keys,
        endpoint_headers=ctx.endpoint_headers,
    )


def embed_model_of(ctx: Any) -> str:
    """The model RAG turns embed their question with."""
    return getattr(ctx, "embed_model", None) or DEFAULT_EMBED_MODEL


class SessionEnd(Enum):
    """How a session ended."""

    DONE = "done"  # every turn answered
    FAILED = "failed"  # a request failed: the user abandons the session
    REFUSED = "refused"  # admission refused (budget spent, run stopping)


@dataclass(frozen=True)
class Session:
    """Whose session it is and how its requests are sent (the plan gives the sizes)."""

    workload: str
    kind: str  # chat, completions, embeddings or rag
    model: str
    region: str
    session_id: str
    system: str  # the shared system prefix text ("" for none)
    system_tokens: int  # its planned size in the target's tokens
    stream: bool
    max_tokens: int | None  # the workload's cap on each turn's output
    extra_body: Mapping[str, Any] | None
    embed_model: str
    admit_first: bool  # ask admission for the first turn too (closed loop)


def run_session(
    client: Any,
    ctx: Any,
    sp: SessionPlan,
    s_index: int,
    s: Session,
    rng: np.random.Generator,
    t_intended_ms: float | None = None,
) -> SessionEnd:
    """Session `s_index` of `sp`, turn by turn, through `client.execute`.

    `t_intended_ms` (open loop): the first turn's intended send time on the run clock;
    later turns and a RAG turn's chat step are due when the user is ready. None (closed
    loop): the records carry no intended time.
    """
    history: list[tuple[str, str]] = []
    sizing = sizing_of(ctx)
    units = sizing.units
    planned = int(s.system_tokens)  # the prompt's content so far, target tokens
    t_next_ms = t_intended_ms
    sl = sp.session_slice(s_index)
    for k in range(sl.start, sl.stop):
        turn = int(sp.turn[k])
        if turn > 0:
            think = float(sp.think_s[k])
            if think > 0:
                gevent.sleep(think)
            t_next_ms = _now_ms(ctx, t_next_ms)
        if (turn > 0 or s.admit_first) and not ctx.admit():
            return SessionEnd.REFUSED
        out_tokens = int(sp.output_tokens[k])
        if s.max_tokens:
            out_tokens = min(out_tokens, int(s.max_tokens))
        own = int(sp.prompt_tokens[k])
        if sp.hash_ids is not None:  # a Mooncake row: its prompt blocks by their ids
            user = prefixblocks.hashed_prompt(sp.hash_ids[k], own, rng, ctx.seed, sizing)
        else:
            user = prompts.text_of_tokens(units(own), rng, ctx.seed)
        if sp.chunk_tokens is not None:
            embed = plan_call(
                "embeddings",
                s.region,
                s.workload,
                s.session_id,
                turn,
                s.embed_model,
                "",
                (),
                user,
                None,
                False,
            )
            if not client.execute(embed, t_intended_ms=t_next_ms).ok:
                return SessionEnd.FAILED
            delay = float(sp.retrieval_delay_s[k]) if sp.retrieval_delay_s is not None else 0.0
            if delay > 0:
                gevent.sleep(delay)
            chunks = [max(4, units(int(c))) for c in sp.chunk_tokens[k]]
            user = prompts.rag_prompt(user, prompts.rag_context(chunks, rng, ctx.seed))
            own += int(np.sum(sp.chunk_tokens[k]))
            # The chat step is due when retrieval is done, not at the flow's arrival.
            t_next_ms = _now_ms(ctx, t_next_ms)
        if not history and s.kind != "embeddings":  # right after the system prefix
            user = salted(user, getattr(ctx, "prompt_salt", ""))
        call = plan_call(
            "chat" if s.kind == "rag" else s.kind,
            s.region,
            s.workload,
            s.session_id,
            turn,
            s.model,
            s.system,
            history,
            user,
            out_tokens,
            s.stream,
            planned + own,
            s.extra_body,
        )
        result = client.execute(call, t_intended_ms=t_next_ms)
        if not result.ok:
            return SessionEnd.FAILED
        if sp.history:
            history.append((user, result.text))
            planned += own + int(result.record.completion_tokens)
    return SessionEnd.DONE


def _now_ms(ctx: Any, t_intended_ms: float | None) -> float | None:
    """Open loop: now on the run clock (the next step is due now); closed loop: None."""
    if t_intended_ms is None:
        return None
    return (time.perf_counter() - ctx.run_t0) * 1000.0
