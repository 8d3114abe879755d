"""Open-loop sessions: run session `i` of the seeded plan, its first turn at its arrival time.

An open-loop arrival starts a session. Its first request is sent at the intended time (the
scheduler's job) and recorded with that `t_intended`; the later turns of a multi-turn session
follow the user's own pace — answer, think time, next question — so they carry their own
intended time (end of the previous turn + think time) and are never late for the schedule.
A RAG turn is an embeddings call, the retrieval delay, then the chat call with the context.

Prompt text comes from `loadkit.workload.prompts` with a generator derived from the seed and
the session's index, so the same seed sends the same text whichever process runs it.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

import gevent
import numpy as np

from loadkit.traffic.calls import plan_call, sizing_of
from loadkit.traffic.client import LLMClient, PlannedCall
from loadkit.workload import prefixblocks, prompts
from loadkit.workload.plan import rng_for
from loadkit.workload.salt import salted

_PROMPTS = 51  # rng_for(seed, _PROMPTS, workload, session)


class SessionRunner:
    """`run(global_index, t_intended_s)` for the open-loop scheduler (one per process)."""

    def __init__(self, plan: Any, ctx: Any, embed_model: str = "text-embedding-3-small"):
        self.plan = plan
        self.ctx = ctx
        sc = ctx.scenario
        self.by_name = {w.name: w for w in sc.workloads}
        self.default_model = sc.target.model
        self.embed_model = embed_model
        self.client = LLMClient(
            ctx.environment,
            ctx.endpoints,
            sc.client,
            headers=ctx.headers,
            sink=ctx.record,
            run_t0=ctx.run_t0,
            run_id=ctx.run_id,
            worker=ctx.worker,
            price=ctx.price_for,
            rtt_ms=ctx.rtt_ms,
            seed=rng_for(sc.seed, _PROMPTS, 0, zlib.crc32(ctx.worker.encode())),
        )
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
        region = plan.region_names[int(plan.region[i])]
        kind = getattr(wl, "kind", "chat")
        model = (getattr(wl, "model", None) or self.default_model) if wl else self.default_model
        stream = bool(getattr(wl, "stream", True))
        max_tokens_cap = getattr(wl, "max_tokens", None)
        rng = rng_for(self.ctx.seed, _PROMPTS, wk + 1, s_index)
        session_id = f"{sw.name}-{s_index}"
        system = self._system(sw, sp.system_prefix_tokens) if sp.system_prefix_tokens else ""
        history: list[tuple[str, str]] = []
        units = sizing_of(self.ctx).units
        planned = int(sp.system_prefix_tokens)  # the prompt's content so far, target tokens
        t_next_ms = t_intended_s * 1000.0
        sl = sp.session_slice(s_index)
        for k in range(sl.start, sl.stop):
            turn = int(sp.turn[k])
            if turn > 0:
                think = float(sp.think_s[k])
                if think > 0:
                    gevent.sleep(think)
                t_next_ms = (time.perf_counter() - self.ctx.run_t0) * 1000.0
            if turn > 0 and not self.ctx.admit():
                return
            out_tokens = int(sp.output_tokens[k])
            if max_tokens_cap:
                out_tokens = min(out_tokens, int(max_tokens_cap))
            own = int(sp.prompt_tokens[k])
            if sp.hash_ids is not None:  # a Mooncake row: its prompt blocks by their ids
                user = prefixblocks.hashed_prompt(
                    sp.hash_ids[k], own, rng, self.ctx.seed, sizing_of(self.ctx)
                )
            else:
                user = prompts.text_of_tokens(units(own), rng, self.ctx.seed)
            if sp.chunk_tokens is not None:
                self._embed(region, sw.name, session_id, turn, user, t_next_ms)
                delay = float(sp.retrieval_delay_s[k]) if sp.retrieval_delay_s is not None else 0
                if delay > 0:
                    gevent.sleep(delay)
                chunks = [max(4, units(int(c))) for c in sp.chunk_tokens[k]]
                context = prompts.rag_context(chunks, rng, self.ctx.seed)
                user = prompts.rag_prompt(user, context)
                own += int(np.sum(sp.chunk_tokens[k]))
                # The chat step is due when retrieval is done, not at the flow's arrival.
                t_next_ms = (time.perf_counter() - self.ctx.run_t0) * 1000.0
            if not history and kind != "embeddings":  # right after the system prefix
                user = salted(user, getattr(self.ctx, "prompt_salt", ""))
            call = plan_call(
                "chat" if kind == "rag" else kind,
                region,
                sw.name,
                session_id,
                turn,
                model,
                system,
                history,
                user,
                out_tokens,
                stream,
                planned + own,
                getattr(wl, "extra_body", None),
            )
            result = self.client.execute(call, t_intended_ms=t_next_ms)
            if not result.ok:
                return  # a user whose request failed abandons the session
            if sp.history:
                history.append((user, result.text))
                planned += own + int(result.record.completion_tokens)

    def _embed(
        self, region: str, workload: str, session_id: str, turn: int, text: str, t_ms: float
    ) -> None:
        call = PlannedCall(
            kind="embeddings",
            region=region,
            workload=workload,
            model=self.embed_model,
            session_id=session_id,
            turn=turn,
            input=text,
            stream=False,
        )
        self.client.execute(call, t_intended_ms=t_ms)
