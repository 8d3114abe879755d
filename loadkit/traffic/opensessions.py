"""Open-loop sessions: run session `i` of the seeded plan, its first turn at its arrival time.

An open-loop arrival starts a session. Its first request is sent at the intended time (the
scheduler's job) and recorded with that `t_intended`; the later turns of a multi-turn session
follow the user's own pace — answer, think time, next question — so they carry their own
intended time (end of the previous turn + think time) and are never late for the schedule.
A RAG turn is an embeddings call, the retrieval delay, then the chat call with the context;
a failed request ends the session (`loadkit.traffic.sessionloop`, shared with the closed loop).

Prompt text comes from `loadkit.workload.prompts` with a generator derived from the seed and
the session's index, so the same seed sends the same text whichever process runs it.
"""

from __future__ import annotations

import zlib
from typing import Any

from loadkit.traffic.calls import sizing_of
from loadkit.traffic.sessionloop import Session, embed_model_of, run_session, session_client
from loadkit.workload import prompts
from loadkit.workload.plan import rng_for

_PROMPTS = 51  # rng_for(seed, _PROMPTS, workload, session)


class SessionRunner:
    """`run(global_index, t_intended_s)` for the open-loop scheduler (one per process)."""

    def __init__(self, plan: Any, ctx: Any, embed_model: str | None = None):
        self.plan = plan
        self.ctx = ctx
        sc = ctx.scenario
        self.by_name = {w.name: w for w in sc.workloads}
        self.default_model = sc.target.model
        self.embed_model = embed_model or embed_model_of(ctx)
        seed = rng_for(sc.seed, _PROMPTS, 0, zlib.crc32(ctx.worker.encode()))
        self.client = session_client(ctx, ctx.environment, seed)
        self._systems: dict[str, str] = {}

    def _system(self, workload: Any, n_tokens: int) -> str:
        text = self._systems.get(workload.name)
        if text is None:
            text = prompts.system_prefix(sizing_of(self.ctx).units(n_tokens), self.ctx.seed)
            self._systems[workload.name] = text
        return text

    def run(self, i: int, t_intended_s: float) -> None:
        plan = self.plan
        wk = int(plan.workload[i])
        s_index = int(plan.index[i])
        sp = plan.sessions[wk]
        sw = plan.workloads[wk]
        wl = self.by_name.get(sw.name)
        n_system = int(sp.system_prefix_tokens)
        session = Session(
            workload=sw.name,
            kind=getattr(wl, "kind", "chat"),
            model=(getattr(wl, "model", None) or self.default_model) if wl else self.default_model,
            region=plan.region_names[int(plan.region[i])],
            session_id=f"{sw.name}-{s_index}",
            system=self._system(sw, n_system) if n_system else "",
            system_tokens=n_system,
            stream=bool(getattr(wl, "stream", True)),
            max_tokens=getattr(wl, "max_tokens", None),
            extra_body=getattr(wl, "extra_body", None),
            embed_model=self.embed_model,
            admit_first=False,  # the scheduler admitted the arrival
        )
        rng = rng_for(self.ctx.seed, _PROMPTS, wk + 1, s_index)
        run_session(self.client, self.ctx, sp, s_index, session, rng, t_intended_s * 1000.0)
