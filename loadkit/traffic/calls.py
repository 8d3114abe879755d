"""One turn of a workload as a `PlannedCall`: the request body's content, no I/O.

Kept apart from `users.py` (which imports Locust, and so gevent's monkey-patching) so the
open-loop sessions and the tests build calls without patching their interpreter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loadkit.traffic.client import PlannedCall
from loadkit.workload import prompts
from loadkit.workload.sizing import ESTIMATE, Sizing


def sizing_of(ctx: Any) -> Sizing:
    """The run's prompt sizing (calibrated in `loadkit run`); the estimate for a bare context."""
    return getattr(ctx, "sizing", None) or ESTIMATE


def plan_call(
    kind: str,
    region: str,
    workload: str,
    session_id: str,
    turn: int,
    model: str,
    system: str,
    history: Sequence[tuple[str, str]],
    user_text: str,
    max_tokens: int | None,
    stream: bool,
    planned_prompt_tokens: int = 0,
    extra_body: Mapping[str, Any] | None = None,
) -> PlannedCall:
    """The request for one turn of a chat, completions or embeddings workload.

    `planned_prompt_tokens`: the whole prompt's content as the workload asked for it, in
    the target's tokens (system prefix + carried history + RAG context + new text; no
    template overhead), recorded for the planned-vs-served comparison. `extra_body` (the
    workload's) is merged into the request body.
    """
    extra = dict(extra_body or {})
    if kind == "embeddings":
        return PlannedCall(
            kind="embeddings",
            region=region,
            workload=workload,
            model=model,
            session_id=session_id,
            turn=turn,
            input=user_text,
            stream=False,
            extra_body=extra,
        )
    if kind == "completions":
        prompt = "".join(f"{u}\n{a}\n" for u, a in history) + user_text
        return PlannedCall(
            kind="completions",
            region=region,
            workload=workload,
            model=model,
            session_id=session_id,
            turn=turn,
            prompt=f"{system}\n{prompt}" if system else prompt,
            max_tokens=max_tokens,
            stream=stream,
            planned_prompt_tokens=planned_prompt_tokens,
            extra_body=extra,
        )
    return PlannedCall(
        kind="chat",
        region=region,
        workload=workload,
        model=model,
        session_id=session_id,
        turn=turn,
        messages=prompts.chat_messages(system, history, user_text),
        max_tokens=max_tokens,
        stream=stream,
        planned_prompt_tokens=planned_prompt_tokens,
        extra_body=extra,
        shared_prefix=bool(system),  # every session's calls open with this system prefix
    )
