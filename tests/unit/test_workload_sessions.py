"""Session structure: turns, think times, per-turn tokens, history, RAG."""

from __future__ import annotations

import numpy as np
import pytest

from loadkit.workload.distributions import Constant, LogNormal, Uniform
from loadkit.workload.sessions import RagFlow, Workload, sample_sessions


def _chat(**kw) -> Workload:
    base = dict(
        name="chat",
        prompt_tokens=LogNormal(200, 800),
        output_tokens=LogNormal(129, 424),
        system_prefix_tokens=500,
        turns=Uniform(1, 6),
        think_time_s=LogNormal(8, 30),
    )
    base.update(kw)
    return Workload(**base)


def test_structure_is_consistent():
    p = sample_sessions(_chat(), 2000, np.random.default_rng(0))
    assert p.n_sessions == 2000 and p.n_turns == int(p.turns.sum())
    assert p.turns.min() >= 1 and p.turns.max() <= 6
    assert np.array_equal(np.bincount(p.session), p.turns)
    assert np.all(p.turn[p.first_turn] == 0)
    assert np.all(p.think_s[p.turn == 0] == 0) and np.all(p.think_s[p.turn > 0] > 0)
    s = p.session_slice(7)
    assert np.all(p.session[s] == 7) and list(p.turn[s]) == list(range(p.turns[7]))
    assert p.prompt_tokens.min() >= 1 and p.output_tokens.min() >= 1


def test_turns_and_think_times_follow_their_distributions():
    w = _chat(turns=LogNormal(3, 8), max_turns=1000)
    p = sample_sessions(w, 100_000, np.random.default_rng(1))
    assert np.median(p.turns) == pytest.approx(3, abs=0.5)
    think = p.think_s[p.turn > 0]
    assert np.quantile(think, 0.5) == pytest.approx(8, rel=0.05)
    assert np.quantile(think, 0.9) == pytest.approx(30, rel=0.05)


def test_history_is_carried_forward_in_context_tokens():
    w = _chat(turns=Constant(3), prompt_tokens=Constant(10), output_tokens=Constant(100))
    p = sample_sessions(w, 4, np.random.default_rng(2))
    # turn k sees prefix + k earlier (user + reply) pairs + its own text
    assert list(p.context_tokens()[:3]) == [510, 620, 730]
    assert list(p.context_tokens()[3:6]) == [510, 620, 730]
    no_hist = sample_sessions(_chat(turns=Constant(3), history=False), 4, np.random.default_rng(2))
    assert np.all(no_hist.context_tokens() == 500 + no_hist.prompt_tokens)


def test_rag_flow_adds_chunks_and_delay():
    rag = RagFlow(chunks=3, chunk_tokens=Constant(100), retrieval_delay_s=Constant(0.2))
    w = _chat(turns=Constant(1), prompt_tokens=Constant(20), rag=rag)
    p = sample_sessions(w, 10, np.random.default_rng(3))
    assert p.chunk_tokens.shape == (10, 3)
    assert np.all(p.rag_context_tokens() == 300)
    assert np.all(p.context_tokens() == 500 + 20 + 300)
    assert np.all(p.retrieval_delay_s == 0.2)


def test_same_seed_same_sessions():
    w = _chat(rag=RagFlow())
    a = sample_sessions(w, 500, np.random.default_rng(4))
    b = sample_sessions(w, 500, np.random.default_rng(4))
    c = sample_sessions(w, 500, np.random.default_rng(5))
    assert a.same_as(b) and not a.same_as(c)


def test_validation():
    with pytest.raises(ValueError, match="name"):
        _chat(name="")
    with pytest.raises(ValueError, match="system_prefix_tokens"):
        _chat(system_prefix_tokens=-1)
    with pytest.raises(ValueError, match="chunks"):
        RagFlow(chunks=0)
