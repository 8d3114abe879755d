"""Synthetic prompt text of an exact token length.

Token counts follow `loadkit.tokens.estimate_tokens` (4 characters per token, rounded up),
the one estimate the mock provider and the client use too. A prompt of n tokens is exactly
4n characters taken from a word pool (English words, seeded) at two random places, the word
cut by a slice end replaced by a whole word of the same length, so the text stays whole
words and two requests practically never start alike (no accidental prefix-cache hits). The pool
averages 4.9 characters per word with its space, so a BPE tokenizer that counts a common
English word as one token would see about 0.8 tokens per estimated token (an estimate, not
measured with a real tokenizer); the mock and the plan agree exactly.

Building a prompt is a string slice plus a few lookups, so a 4,000-token prompt takes
microseconds; no per-word Python loop runs per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from loadkit.tokens import CHARS_PER_TOKEN, estimate_tokens

# Common English words of 1..12 letters: the pool draws from them, and they also serve as
# the same-length replacement for a word cut at the end of a slice.
_WORD_TEXT = (
    "a I "
    "an as at be by do go if in is it me my no of on or so to up us we "
    "all and any are but can day did for get had has her him his how its let may new not now "
    "old one our out own say see she the too two use way who why yes you "
    "also back been call case come data each even file find from give good have help here "
    "just keep know last like line list long look made make many more most much must name "
    "need next only open over part plan read same send show side some such take than that "
    "them then they this time turn very want well what when will with word work year your "
    "about after again being below check could doing early every first found given great "
    "group house large later learn level might never order other place point quite right "
    "short small start state still study table their there these thing think three today "
    "under until value water where which while whole world would write "
    "answer before better change common course during enough follow ground health "
    "member moment number people period person public reason report result second should "
    "simple social source system though toward useful within "
    "account against between company control country current example general history "
    "however include measure million nothing perhaps problem process program provide "
    "question request service similar support through without "
    "activity building business consider continue customer decision describe direction "
    "evidence increase industry language location position possible practice question "
    "research response security standard strategy question together "
    "according agreement attention available community condition determine difference "
    "different equipment establish important including knowledge structure situation "
    "conference additional application department experience government individual "
    "particular population production understand university "
    "alternatively relationship organization distribution particularly "
)
_WORDS = tuple(dict.fromkeys(_WORD_TEXT.split()))


def _by_length() -> dict[int, tuple[str, ...]]:
    out: dict[int, list[str]] = {}
    for w in _WORDS:
        out.setdefault(len(w), []).append(w)
    return {k: tuple(v) for k, v in out.items()}


_POOL_CHARS = 1 << 18  # 256 KiB of text: 65,536 tokens before the pool repeats


@dataclass(frozen=True)
class _Pool:
    text: str
    starts: np.ndarray  # offsets of word starts
    by_len: dict[int, tuple[str, ...]] = field(repr=False)


@lru_cache(maxsize=16)
def _pool(seed: int) -> _Pool:
    """A seeded word pool (built once per seed, ~10 ms)."""
    rng = np.random.default_rng([seed, 0x9E3779B9])
    words = np.array(_WORDS, dtype=object)
    # Zipf-like weights: earlier (shorter, commoner) words more often.
    w = 1.0 / np.arange(1, len(words) + 1) ** 0.6
    n_words = _POOL_CHARS // 5
    picks = words[rng.choice(len(words), size=n_words, p=w / w.sum())]
    text = " ".join(picks.tolist())
    while len(text) < _POOL_CHARS + 64:
        text = text + " " + text
    text = text[: text.rfind(" ", 0, _POOL_CHARS + 64) + 1]  # ends on a space: repeats cleanly
    lens = np.fromiter((len(p) + 1 for p in picks), dtype=np.int64, count=len(picks))
    starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    starts = starts[starts < _POOL_CHARS // 2]
    return _Pool(text=text, starts=starts, by_len=_by_length())


def _whole_words(s: str, by_len: dict[int, tuple[str, ...]]) -> str:
    """Replace the trailing fragment of `s` (after its last space) by a word of equal length."""
    cut = s.rfind(" ")
    frag = len(s) - cut - 1
    if frag == 0:
        return s[:-1] + "."  # ends on a space: end the sentence instead
    choices = by_len.get(frag)
    if choices is None:  # longer than any word: leave as is
        return s
    return s[: cut + 1] + choices[frag % len(choices)]


def _slice(pool: _Pool, offset: int, n_chars: int) -> str:
    text = pool.text
    if n_chars <= len(text) - offset:
        return _whole_words(text[offset : offset + n_chars], pool.by_len)
    reps = -(-(offset + n_chars) // len(text)) + 1
    return _whole_words((text * reps)[offset : offset + n_chars], pool.by_len)


_HEAD_CHARS = 64  # a text's first 16 tokens come from one random place, the rest from another


def _random_text(pool: _Pool, rng: np.random.Generator, n_chars: int) -> str:
    """`n_chars` of whole words from two random places in the pool.

    With one random start, two requests would begin identically about once per 26,000
    pairs, and a server's prefix cache would hit where real traffic would not; two
    independent starts make that about once per 700 million pairs.
    """
    a, b = pool.starts[rng.integers(0, pool.starts.size, 2)]
    if n_chars <= 2 * _HEAD_CHARS:
        return _slice(pool, int(a), n_chars)
    head = _slice(pool, int(a), _HEAD_CHARS - 1) + " "
    return head + _slice(pool, int(b), n_chars - _HEAD_CHARS)


def text_of_tokens(n_tokens: int, rng: np.random.Generator, seed: int = 0) -> str:
    """Text with `estimate_tokens(text) == n_tokens`, starting at a random word of the pool."""
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
    if n_tokens == 0:
        return ""
    pool = _pool(seed)
    return _random_text(pool, rng, int(n_tokens) * CHARS_PER_TOKEN)


def system_prefix(n_tokens: int, seed: int) -> str:
    """The shared system prompt of a workload: the same text for every request of that seed,
    so a server's prefix cache can hit on it."""
    if n_tokens < 0:
        raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
    if n_tokens == 0:
        return ""
    pool = _pool(seed)
    n_chars = int(n_tokens) * CHARS_PER_TOKEN
    head = "You are a helpful assistant. "
    if n_chars <= len(head) + 8:
        return _slice(pool, 0, n_chars)
    return head + _slice(pool, 0, n_chars - len(head))


@dataclass(frozen=True)
class PromptSynth:
    """Prompt text for one workload stream: a seed for the pool plus the caller's rng."""

    seed: int = 0

    def text(self, n_tokens: int, rng: np.random.Generator) -> str:
        return text_of_tokens(n_tokens, rng, self.seed)

    def system(self, n_tokens: int) -> str:
        return system_prefix(n_tokens, self.seed)

    def rag_context(self, chunk_tokens: Sequence[int], rng: np.random.Generator) -> str:
        return rag_context(chunk_tokens, rng, self.seed)


def rag_context(chunk_tokens: Sequence[int], rng: np.random.Generator, seed: int = 0) -> str:
    """Retrieved passages as one text: `[doc k] <passage>` joined by blank lines.

    The total is exactly `sum(chunk_tokens)` tokens: each passage's label and separator are
    counted inside its own token budget (a chunk needs at least 4 tokens).
    """
    parts = []
    for k, n in enumerate(chunk_tokens, start=1):
        label = f"[doc {k}] "
        sep = "\n\n" if k < len(chunk_tokens) else ""
        n_chars = int(n) * CHARS_PER_TOKEN
        body_chars = n_chars - len(label) - len(sep)
        if body_chars < 1:
            raise ValueError(f"a retrieved chunk needs at least 4 tokens, got {n}")
        parts.append(label + _random_text(_pool(seed), rng, body_chars) + sep)
    return "".join(parts)


def rag_prompt(question: str, context: str) -> str:
    """The user message of a RAG chat call: the retrieved context, then the question."""
    return f"Context:\n{context}\n\nQuestion: {question}"


def chat_messages(
    system: str,
    history: Sequence[tuple[str, str]],
    user: str,
) -> list[dict[str, str]]:
    """OpenAI chat messages: optional system prompt, earlier (user, assistant) turns, new user.

    Carrying the history forward is what makes turn k's prompt contain turns 1..k-1, as a real
    chat client does.
    """
    msgs: list[dict[str, str]] = []
    if system:
        msgs.append({"role": "system", "content": system})
    for u, a in history:
        msgs.append({"role": "user", "content": u})
        msgs.append({"role": "assistant", "content": a})
    msgs.append({"role": "user", "content": user})
    return msgs


def messages_tokens(messages: Sequence[dict[str, str]]) -> int:
    """Prompt tokens of a message list: the sum of each content's estimate (no role overhead)."""
    return sum(estimate_tokens(m.get("content") or "") for m in messages)


@dataclass
class Conversation:
    """One session's chat state: the system prompt and the (user, assistant) turns so far.

    Every text this module writes is exactly 4 characters per token, so the estimate of the
    concatenated messages equals the sum of their estimates.
    """

    system: str = ""
    carry_history: bool = True
    turns: list[tuple[str, str]] = field(default_factory=list)

    def messages(self, user: str) -> list[dict[str, str]]:
        """The messages to send for a new user text."""
        return chat_messages(self.system, self.turns if self.carry_history else (), user)

    def record(self, user: str, assistant: str) -> None:
        """Remember a finished turn (the reply as the server sent it), if history is kept."""
        if self.carry_history:
            self.turns.append((user, assistant))
