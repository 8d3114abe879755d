"""Closed-loop LLM users: one Locust `FastHttpUser` class per workload, running sessions.

A user is one person at a keyboard: it picks a region (spread over the regions by their
share), then runs sessions back to back. A session is the workload's sampled plan
(`loadkit.workload.sessions`): turns with think time between them, the conversation
history carried into each next prompt (with the reply text the server really sent), and
for RAG workloads an embeddings call, the retrieval delay, then the chat call with the
retrieved context (`loadkit.traffic.sessionloop`, shared with the open loop). A failed
logical request (after the client's retries and failover) ends the session, as a real user
would give up and start over.

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
from locust import FastHttpUser, constant, task
from locust.exception import StopUser

from loadkit.scenario import bridge
from loadkit.traffic.assign import RegionPicker, int_weights
from loadkit.traffic.calls import sizing_of
from loadkit.traffic.sessionloop import (
    Session,
    SessionEnd,
    embed_model_of,
    run_session,
    session_client,
)
from loadkit.workload import prompts
from loadkit.workload.plan import rng_for
from loadkit.workload.sessions import SessionPlan, sample_sessions

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
        self.embed_model = embed_model_of(ctx)
        self.system = (
            prompts.system_prefix(sizing_of(ctx).units(int(w.system_prefix_tokens)), ctx.seed)
            if w.system_prefix_tokens
            else ""
        )
        self.llm = session_client(ctx, self.environment, self.rng, pool_size=4)
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
        end = self.run_session(plan, i)
        if end is SessionEnd.REFUSED:
            raise StopUser()
        self.sessions_done += 1
        if end is SessionEnd.FAILED:
            gevent.sleep(_PAUSE_AFTER_FAILURE_S)

    def run_session(self, sp: SessionPlan, s_index: int) -> SessionEnd:
        """One session's turns (`sessionloop`); a failed request abandons the session."""
        ctx = self.ctx
        w = self.workload
        session = Session(
            workload=w.name,
            kind=w.kind,
            model=self.model,
            region=self.region,
            session_id=f"{ctx.worker}-{w.name}-{self.user_no}-{self.sessions_done}",
            system=self.system,
            system_tokens=int(w.system_prefix_tokens),
            stream=bool(w.stream),
            max_tokens=w.max_tokens,
            extra_body=w.extra_body,
            embed_model=self.embed_model,
            admit_first=True,  # a closed-loop user asks before every request
        )
        return run_session(self.llm, ctx, sp, s_index, session, self.rng)


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
