"""Workloads (personas) and the structure of their sessions.

A workload says what one user session looks like: how many turns, the new user text and the
requested output per turn, the think time before each later turn, a shared system prefix, and
optionally a RAG flow (an embeddings call on the question, a retrieval delay, then a chat call
whose prompt carries the retrieved passages). `sample_sessions` draws all of that for many
sessions at once, vectorised: one draw per quantity for all turns of all sessions.

Token semantics: `prompt_tokens` is the new user text of a turn. The prompt a server sees for
turn k is system prefix + history of turns 1..k-1 (user text and the assistant's replies) +
retrieved context (RAG) + the new text; `SessionPlan.context_tokens` gives that total when
each reply is as long as its `output_tokens`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from loadkit.workload.distributions import Constant, Distribution, sample_counts


@dataclass(frozen=True)
class RagFlow:
    """Embed the question, wait for retrieval, then chat with `chunks` passages in the prompt."""

    chunks: int = 4
    chunk_tokens: Distribution = field(default_factory=lambda: Constant(256))
    retrieval_delay_s: Distribution = field(default_factory=lambda: Constant(0.05))
    embed_model: str | None = None

    def __post_init__(self) -> None:
        if int(self.chunks) != self.chunks or self.chunks < 1:
            raise ValueError(f"chunks must be a whole number >= 1, got {self.chunks!r}")
        if self.chunk_tokens.quantile(0.5) < 4:
            raise ValueError("chunk_tokens: a retrieved chunk needs at least 4 tokens")


@dataclass(frozen=True)
class Workload:
    """One persona: the shape of its sessions. Distributions are per turn unless named."""

    name: str
    prompt_tokens: Distribution
    output_tokens: Distribution
    system_prefix_tokens: int = 0
    turns: Distribution = field(default_factory=lambda: Constant(1))
    think_time_s: Distribution = field(default_factory=lambda: Constant(0.0))
    history: bool = True
    max_turns: int = 64
    rag: RagFlow | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")
        if int(self.system_prefix_tokens) != self.system_prefix_tokens or (
            self.system_prefix_tokens < 0
        ):
            raise ValueError(
                "system_prefix_tokens must be a whole number >= 0, "
                f"got {self.system_prefix_tokens!r}"
            )
        if int(self.max_turns) != self.max_turns or self.max_turns < 1:
            raise ValueError(f"max_turns must be a whole number >= 1, got {self.max_turns!r}")
        if self.turns.quantile(1.0) < 0.5:
            raise ValueError("turns: sessions need at least one turn")


@dataclass(frozen=True, eq=False)
class SessionPlan:
    """Sessions of one workload; per-turn arrays are flat, session after session."""

    turns: np.ndarray  # int64 per session
    first_turn: np.ndarray  # int64 index of each session's first turn in the flat arrays
    session: np.ndarray  # int64 per turn: session index
    turn: np.ndarray  # int64 per turn: 0-based turn number within its session
    prompt_tokens: np.ndarray  # int64 per turn: new user text
    output_tokens: np.ndarray  # int64 per turn: requested max tokens
    think_s: np.ndarray  # float64 per turn: wait before sending (0 for a session's first turn)
    system_prefix_tokens: int = 0
    history: bool = True
    chunk_tokens: np.ndarray | None = None  # int64 (turns, chunks) for RAG
    retrieval_delay_s: np.ndarray | None = None  # float64 per turn for RAG
    hash_ids: tuple[tuple[int, ...], ...] | None = None  # per turn: a Mooncake row's blocks

    @property
    def n_sessions(self) -> int:
        return int(self.turns.size)

    @property
    def n_turns(self) -> int:
        return int(self.session.size)

    def rag_context_tokens(self) -> np.ndarray:
        if self.chunk_tokens is None:
            return np.zeros(self.n_turns, dtype=np.int64)
        return self.chunk_tokens.sum(axis=1)

    def context_tokens(self) -> np.ndarray:
        """Prompt tokens the server sees per turn, if each reply is `output_tokens` long.

        The RAG context and the user text are counted as the turn's user message; with
        history, earlier turns' messages (including their context) are carried forward.
        """
        own = self.prompt_tokens + self.rag_context_tokens()
        if not self.history:
            return self.system_prefix_tokens + own
        per_turn = own + self.output_tokens
        csum = np.cumsum(per_turn)
        before_session = np.where(self.first_turn > 0, csum[self.first_turn - 1], 0)
        earlier = csum - per_turn - before_session[self.session]
        return self.system_prefix_tokens + earlier + own

    def session_slice(self, i: int) -> slice:
        start = int(self.first_turn[i])
        return slice(start, start + int(self.turns[i]))

    def same_as(self, other: SessionPlan) -> bool:
        """Identical plans (for reproducibility checks)."""
        names = ("turns", "session", "turn", "prompt_tokens", "output_tokens", "think_s")
        if any(not np.array_equal(getattr(self, n), getattr(other, n)) for n in names):
            return False
        for n in ("chunk_tokens", "retrieval_delay_s"):
            a, b = getattr(self, n), getattr(other, n)
            if (a is None) != (b is None) or (a is not None and not np.array_equal(a, b)):
                return False
        return True


def sample_sessions(workload: Workload, n_sessions: int, rng: np.random.Generator) -> SessionPlan:
    """Structure of `n_sessions` sessions of `workload`; the same rng state gives the same plan."""
    w = workload
    turns = sample_counts(w.turns, rng, n_sessions, low=1, high=w.max_turns)
    total = int(turns.sum())
    first = np.concatenate(([0], np.cumsum(turns)[:-1])).astype(np.int64)
    session = np.repeat(np.arange(n_sessions, dtype=np.int64), turns)
    turn = np.arange(total, dtype=np.int64) - first[session]
    prompt = sample_counts(w.prompt_tokens, rng, total, low=1)
    output = sample_counts(w.output_tokens, rng, total, low=1)
    think = np.maximum(w.think_time_s.sample(rng, total), 0.0)
    think[turn == 0] = 0.0
    chunks = delay = None
    if w.rag is not None:
        chunks = sample_counts(w.rag.chunk_tokens, rng, total * w.rag.chunks, low=4).reshape(
            total, w.rag.chunks
        )
        delay = np.maximum(w.rag.retrieval_delay_s.sample(rng, total), 0.0)
    return SessionPlan(
        turns=turns,
        first_turn=first,
        session=session,
        turn=turn,
        prompt_tokens=prompt,
        output_tokens=output,
        think_s=think,
        system_prefix_tokens=int(w.system_prefix_tokens),
        history=w.history,
        chunk_tokens=chunks,
        retrieval_delay_s=delay,
    )
