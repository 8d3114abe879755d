"""Synthetic prompt text: exact token length under the one estimate, seeded, whole words."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadkit.tokens import estimate_tokens
from loadkit.workload.prompts import (
    Conversation,
    PromptSynth,
    chat_messages,
    messages_tokens,
    rag_context,
    rag_prompt,
    system_prefix,
    text_of_tokens,
)


@given(n=st.integers(0, 70_000), seed=st.integers(0, 3), draw=st.integers(0, 2**32 - 1))
@settings(max_examples=150, deadline=None)
def test_text_has_exactly_the_requested_tokens(n, seed, draw):
    text = text_of_tokens(n, np.random.default_rng(draw), seed)
    assert estimate_tokens(text) == n
    assert len(text) == 4 * n


def test_text_is_whole_words_and_varies_between_requests():
    rng = np.random.default_rng(0)
    texts = [text_of_tokens(300, rng) for _ in range(50)]
    assert len(set(texts)) == 50
    words = " ".join(texts).replace(".", " ").split()
    assert all(w.isalpha() for w in words)
    # the word at the end of each slice is whole, not a fragment of a pool word
    from loadkit.workload.prompts import _WORDS

    vocab = set(_WORDS)
    assert all(t.rstrip(".").split()[-1] in vocab for t in texts)


def test_same_seed_same_text():
    a = text_of_tokens(1000, np.random.default_rng(5))
    b = text_of_tokens(1000, np.random.default_rng(5))
    assert a == b
    assert text_of_tokens(1000, np.random.default_rng(5), seed=1) != a


@pytest.mark.parametrize("n", [0, 1, 3, 7, 8, 9, 50, 1024, 4000])
def test_system_prefix_is_shared_and_exact(n):
    a = system_prefix(n, seed=3)
    assert a == system_prefix(n, seed=3)
    assert estimate_tokens(a) == n
    if n > 10:
        assert a != system_prefix(n, seed=4)
        assert a.startswith("You are a helpful assistant.")


def test_longer_prefix_extends_shorter_one_for_cache_sharing():
    short, long = system_prefix(100, 1), system_prefix(200, 1)
    common = len(short) - 20  # the last word of a slice may be replaced
    assert long[:common] == short[:common]


def test_rag_context_has_exact_total_and_labels():
    rng = np.random.default_rng(2)
    ctx = rag_context([64, 200, 33], rng)
    assert estimate_tokens(ctx) == 64 + 200 + 33
    assert ctx.count("[doc ") == 3 and ctx.startswith("[doc 1] ")
    with pytest.raises(ValueError, match="at least 4 tokens"):
        rag_context([2], rng)
    assert "Question: why" in rag_prompt("why", ctx)


def test_chat_messages_carry_history_forward():
    synth = PromptSynth(seed=9)
    rng = np.random.default_rng(0)
    sys_msg = synth.system(100)
    turns = [(synth.text(50, rng), synth.text(80, rng)), (synth.text(30, rng), synth.text(20, rng))]
    new = synth.text(40, rng)
    msgs = chat_messages(sys_msg, turns, new)
    assert [m["role"] for m in msgs] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert msgs[-1]["content"] == new
    assert messages_tokens(msgs) == 100 + 50 + 80 + 30 + 20 + 40
    assert chat_messages("", [], "hi") == [{"role": "user", "content": "hi"}]


def test_negative_length_is_rejected():
    with pytest.raises(ValueError):
        text_of_tokens(-1, np.random.default_rng())


def test_conversation_keeps_history_only_when_asked():
    conv = Conversation(system="sys.", carry_history=True)
    conv.record("u1", "a1")
    assert [m["content"] for m in conv.messages("u2")] == ["sys.", "u1", "a1", "u2"]
    flat = Conversation(system="", carry_history=False)
    flat.record("u1", "a1")
    assert flat.messages("u2") == [{"role": "user", "content": "u2"}]
    # texts of exact length concatenate to exact totals (what a server estimating over the
    # joined contents would count)
    rng = np.random.default_rng(1)
    msgs = chat_messages(system_prefix(37, 1), [], text_of_tokens(55, rng))
    assert estimate_tokens("".join(m["content"] for m in msgs)) == messages_tokens(msgs) == 92


def test_requests_do_not_share_beginnings_by_accident():
    """Only the configured system prefix should give prefix-cache hits, not the user text."""
    rng = np.random.default_rng(8)
    texts = [text_of_tokens(300, rng) for _ in range(20_000)]
    assert len({t[:160] for t in texts}) == len(texts)
