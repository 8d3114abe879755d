"""The one session loop of closed-loop users and open-loop arrivals (no Locust, no server)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from loadkit.traffic.sessionloop import (
    DEFAULT_EMBED_MODEL,
    Session,
    SessionEnd,
    embed_model_of,
    run_session,
)
from loadkit.workload.distributions import Constant
from loadkit.workload.sessions import RagFlow, Workload, sample_sessions


@dataclass
class _Record:
    completion_tokens: int = 3


@dataclass
class _Result:
    ok: bool
    text: str = "an answer"
    record: _Record = field(default_factory=_Record)


class _Client:
    """Answers every call; `fail` names the call kinds that fail."""

    def __init__(self, fail: tuple[str, ...] = ()) -> None:
        self.fail = fail
        self.calls: list[tuple[str, Any, float | None]] = []

    def execute(self, call: Any, t_intended_ms: float | None = None) -> _Result:
        self.calls.append((call.kind, call, t_intended_ms))
        return _Result(ok=call.kind not in self.fail)


class _Ctx:
    seed = 5
    run_t0 = 0.0

    def __init__(self, admit: int = 1000) -> None:
        self.left = admit

    def admit(self) -> bool:
        self.left -= 1
        return self.left >= 0


SESSION = Session(
    workload="rag",
    kind="rag",
    model="m",
    region="eu",
    session_id="s-0",
    system="",
    system_tokens=0,
    stream=True,
    max_tokens=None,
    extra_body=None,
    embed_model=DEFAULT_EMBED_MODEL,
    admit_first=True,
)


def _plan(turns: int = 2) -> Any:
    w = Workload(
        name="rag",
        prompt_tokens=Constant(20),
        output_tokens=Constant(5),
        turns=Constant(turns),
        rag=RagFlow(chunks=2, chunk_tokens=Constant(16), retrieval_delay_s=Constant(0.0)),
    )
    return sample_sessions(w, 1, np.random.default_rng(0))


def test_a_rag_turn_embeds_then_chats_with_the_context() -> None:
    client = _Client()
    end = run_session(client, _Ctx(), _plan(), 0, SESSION, np.random.default_rng(1))
    assert end is SessionEnd.DONE
    assert [k for k, _, _ in client.calls] == ["embeddings", "chat"] * 2
    assert client.calls[0][1].model == DEFAULT_EMBED_MODEL
    assert all(t is None for _, _, t in client.calls)  # closed loop: no intended time


def test_a_failed_embeddings_call_abandons_the_session() -> None:
    client = _Client(fail=("embeddings",))
    end = run_session(client, _Ctx(), _plan(), 0, SESSION, np.random.default_rng(1))
    assert end is SessionEnd.FAILED
    assert [k for k, _, _ in client.calls] == ["embeddings"]  # no question without context


def test_admission_closed_loop_asks_for_every_turn_open_loop_not_for_the_first() -> None:
    client = _Client()
    end = run_session(client, _Ctx(admit=0), _plan(), 0, SESSION, np.random.default_rng(1))
    assert end is SessionEnd.REFUSED and client.calls == []
    opened = replace(SESSION, admit_first=False)
    end = run_session(client, _Ctx(admit=0), _plan(), 0, opened, np.random.default_rng(1), 250.0)
    assert end is SessionEnd.REFUSED
    assert [(k, t) for k, _, t in client.calls] == [
        ("embeddings", 250.0),
        ("chat", client.calls[1][2]),
    ]
    assert client.calls[1][2] is not None  # the chat step is due when retrieval is done


def test_one_embeddings_model_default() -> None:
    assert embed_model_of(object()) == DEFAULT_EMBED_MODEL

    class Named:
        embed_model = "e5"

    assert embed_model_of(Named()) == "e5"
