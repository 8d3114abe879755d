"""Closed-loop LLM users: one Locust `FastHttpUser` class per workload, running sessions.

A user is one person at a keyboard: it picks a region (spread over the regions by their
share), then runs sessions back to back. A session is the workload's sampled plan
(`loadkit.workload.sessions`): turns with think time between them, the conversation
history carried into each next prompt (with the reply text the server really sent), and
for RAG workloads an embeddings call, the retrieval delay, then the chat call with the
retrieved context. A failed logical request (after the client's retries and failover)
ends the session, as a real user would give up and start over.

Requests go through `LLMClient` (records, live TTFT/ITL rows, resilience), not through
`self.client`: the FastHttpUser base gives Locust's host/user plumbing, the client its
own SSE-timed connection pools (see `loadkit.traffic.client`).

Randomness: each user derives its own generator from (scenario seed, worker, workload,
user number), so the same seed sends the same sessions in a re-run.
"""

from __future__ import annotations

import itertools
import re
import zlib
from typing import Any

import gevent
import numpy as np
from locust import FastHttpUser, constant, task
from locust.exception import StopUser

from loadkit.scenario import bridge
from loadkit.traffic.assign import RegionPicker, int_weights
from loadkit.traffic.calls import plan_call, sizing_of
from loadkit.traffic.client import LLMClient, PlannedCall
from loadkit.workload import prompts
from loadkit.workload.plan import rng_for
from loadkit.workload.salt import salted
from loadkit.workload.sessions import SessionPlan, sample_sessions

DEFAULT_EMBED_MODEL = "text-embedding-3-small"
_STREAM_USERS = 97  # rng_for(seed, _STREAM_USERS, worker, workload, user)
_STREAM_START = 98  # the start spread's own stream: it leaves the users' sessions as they were
_SESSIONS_PER_DRAW = 16
_PAUSE_AFTER_FAILURE_S = 1.0
# Locust starts users in batches, floor(spawn rate) at once, at most once a second. Users of
# a batch that all sent their first request in the same millisecond would stay in step for
# the whole run (closed loop, similar answers) and hit the service as bursts it would never
# see from people; each user's first request is spread over the second after its start.
START_SPREAD_S = 1.0


def _class_name(name: str) -> str:
    return "LLMUser_" + (re.sub(r"\W", "_", name) or "workload")


class LLMUser(FastHttpUser):
    """Base class; `build_user_classes` makes one subclass per workload."""

    abstract = True
    wait_time = constant(0)
    # set on each subclass by build_user_classes
    ctx: Any = None
    workload: Any = None
    workload_index: int = 0
    picker: RegionPicker | None = None
    numbers: Any = None  # itertools.count: the user's number within its class

    def on_start(self) -> None:
        ctx = self.ctx
        sc = ctx.scenario
        w = self.workload
        self.user_no = next(self.numbers)
        self.region = self.picker.next() if self.picker else next(iter(ctx.endpoints))
        worker_key = zlib.crc32(str(ctx.worker).encode())
        self.rng = rng_for(ctx.seed, _STREAM_USERS, worker_key, self.workload_index, self.user_no)
        self.session_workload = bridge.session_workload(w)
        self.model = w.model or sc.target.model
        self.embed_model = getattr(ctx, "embed_model", None) or DEFAULT_EMBED_MODEL
        self.system = (
            prompts.system_prefix(sizing_of(ctx).units(int(w.system_prefix_tokens)), ctx.seed)
            if w.system_prefix_tokens
            else ""
        )
        self.llm = LLMClient(
            self.environment,
            ctx.endpoints,
            sc.client,
            headers=ctx.headers,
            sink=ctx.record,
            run_t0=ctx.run_t0,
            run_id=ctx.run_id,
            worker=str(ctx.worker),
            price=ctx.price_for,
            rtt_ms=ctx.rtt_ms,
            seed=self.rng,
            pool_size=4,
        )
        self._plan: SessionPlan | None = None
        self._next = 0
        self.sessions_done = 0
        keys = (worker_key, self.workload_index, self.user_no)
        gevent.sleep(float(rng_for(ctx.seed, _STREAM_START, *keys).uniform(0.0, START_SPREAD_S)))

    def on_stop(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.close()

    def _next_session(self) -> tuple[SessionPlan, int]:
        if self._plan is None or self._next >= self._plan.n_sessions:
            self._plan = sample_sessions(self.session_workload, _SESSIONS_PER_DRAW, self.rng)
            self._next = 0
        i = self._next
        self._next += 1
        return self._plan, i

    @task
    def session(self) -> None:
        plan, i = self._next_session()
        ok = self.run_session(plan, i)
        self.sessions_done += 1
        if not ok:
            gevent.sleep(_PAUSE_AFTER_FAILURE_S)

    def run_session(self, sp: SessionPlan, s_index: int) -> bool:
        """One session's turns; False if a request failed (the session is abandoned)."""
        ctx = self.ctx
        w = self.workload
        sl = sp.session_slice(s_index)
        session_id = f"{ctx.worker}-{w.name}-{self.user_no}-{self.sessions_done}"
        history: list[tuple[str, str]] = []
        units = sizing_of(ctx).units
        planned = int(w.system_prefix_tokens)  # the prompt's content so far, target tokens
        for k in range(sl.start, sl.stop):
            turn = int(sp.turn[k])
            think = float(sp.think_s[k])
            if turn > 0 and think > 0:
                gevent.sleep(think)
            if not ctx.admit():
                raise StopUser()
            out_tokens = int(sp.output_tokens[k])
            if w.max_tokens:
                out_tokens = min(out_tokens, int(w.max_tokens))
            user_text = prompts.text_of_tokens(units(int(sp.prompt_tokens[k])), self.rng, ctx.seed)
            own = int(sp.prompt_tokens[k])
            if sp.chunk_tokens is not None:
                embed = PlannedCall(
                    kind="embeddings",
                    region=self.region,
                    workload=w.name,
                    model=self.embed_model,
                    session_id=session_id,
                    turn=turn,
                    input=user_text,
                    stream=False,
                )
                if not self.llm.execute(embed).ok:
                    return False
                if sp.retrieval_delay_s is not None and sp.retrieval_delay_s[k] > 0:
                    gevent.sleep(float(sp.retrieval_delay_s[k]))
                chunks = [max(4, units(int(c))) for c in sp.chunk_tokens[k]]
                context = prompts.rag_context(chunks, self.rng, ctx.seed)
                user_text = prompts.rag_prompt(user_text, context)
                own += int(np.sum(sp.chunk_tokens[k]))
            if not history and w.kind != "embeddings":  # right after the system prefix
                user_text = salted(user_text, getattr(ctx, "prompt_salt", ""))
            kind = "chat" if w.kind == "rag" else w.kind
            call = plan_call(
                kind,
                self.region,
                w.name,
                session_id,
                turn,
                self.model,
                self.system,
                history if sp.history else (),
                user_text,
                out_tokens,
                bool(w.stream),
                planned + own,
                w.extra_body,
            )
            result = self.llm.execute(call)
            if not result.ok:
                return False
            if sp.history:
                history.append((user_text, result.text))
                planned += own + int(result.record.completion_tokens)
        return True


def build_user_classes(scenario: Any, context: Any) -> list[type[LLMUser]]:
    """One `LLMUser` subclass per workload, weighted by the workload's weight.

    `context` provides: scenario, endpoints (region -> base URL), headers, run_id, seed,
    rtt_ms, worker, run_t0 (read when a user starts), record(RequestRecord), admit() and
    price_for(region).
    """
    regions = [r for r in scenario.regions if r.name in context.endpoints]
    if regions:
        names = [r.name for r in regions]
        shares = [r.share for r in regions]
    else:
        names, shares = [next(iter(context.endpoints))], [1.0]
    host = context.endpoints[names[0]]
    weights = int_weights([w.weight for w in scenario.workloads])
    classes: list[type[LLMUser]] = []
    for index, (w, weight) in enumerate(zip(scenario.workloads, weights, strict=True)):
        attrs = {
            "abstract": False,
            "weight": weight,
            "host": host,
            "ctx": context,
            "workload": w,
            "workload_index": index,
            "picker": RegionPicker(names, shares),
            "numbers": itertools.count(),
            "__module__": __name__,
        }
        classes.append(type(_class_name(w.name), (LLMUser,), attrs))
    return classes
