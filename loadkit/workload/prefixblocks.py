"""Prefix-faithful trace replay: a Mooncake row's prompt built from its `hash_ids`.

In the Mooncake format each request lists the ids of its prompt's blocks of
`MOONCAKE_BLOCK_TOKENS` (512) tokens, prefix-chained: two requests whose first k ids are
equal share their first k blocks of prompt. The replay writes every block id as its own
text (seeded by the scenario seed and the id), so equal ids give equal text and a server's
prefix cache sees the reuse the trace recorded; the last block of a row is cut to the
row's `input_length` (a prefix of that block's full text, so a partial block still matches
its full self). Ids beyond the row's length are ignored; a row with fewer ids than its
length is filled with fresh text that no other request shares.

Block sizes are target tokens: with a calibration (`loadkit.workload.sizing.Sizing`) a
block is `sizing.units(512)` synthesis units, so it holds 512 of the service's tokens.

`potential_hit_share` is what an unbounded prefix cache could serve: over rows in arrival
order, the tokens of each row's leading blocks already seen, over all prompt tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from loadkit.tokens import CHARS_PER_TOKEN
from loadkit.workload.prompts import text_of_tokens
from loadkit.workload.sizing import Sizing
from loadkit.workload.tracegen import MOONCAKE_BLOCK_TOKENS

_BLOCKS = 0xB10C  # seed stream of block texts: rng_for(seed, _BLOCKS, block id)


@lru_cache(maxsize=4096)
def block_text(block_id: int, units: int, seed: int) -> str:
    """The full text of one block: `units` synthesis units, ending on a space so that the
    next block starts a new word."""
    from loadkit.workload.plan import rng_for

    text = text_of_tokens(units, rng_for(seed, _BLOCKS, block_id & 0x7FFF_FFFF_FFFF_FFFF), seed)
    return text[:-1] + " " if text else text


def hashed_prompt(
    hash_ids: Sequence[int],
    n_tokens: int,
    rng: np.random.Generator,
    seed: int,
    sizing: Sizing | None = None,
    block_tokens: int = MOONCAKE_BLOCK_TOKENS,
) -> str:
    """A prompt of `n_tokens` target tokens whose blocks are the texts of `hash_ids`."""
    sizing = sizing or Sizing()
    n = int(n_tokens)
    full_units = sizing.units(block_tokens)
    parts: list[str] = []
    left = n
    for bid in hash_ids:
        if left <= 0:
            break
        text = block_text(int(bid), full_units, seed)
        if left < block_tokens:
            text = text[: sizing.units(left) * CHARS_PER_TOKEN]
        parts.append(text)
        left -= block_tokens
    if left > 0:
        parts.append(text_of_tokens(sizing.units(left), rng, seed))
    return "".join(parts)


def hit_tokens(
    hash_ids: Sequence[Sequence[int]],
    input_tokens: Sequence[int],
    block_tokens: int = MOONCAKE_BLOCK_TOKENS,
) -> np.ndarray:
    """Per row (arrival order), tokens an unbounded prefix cache could serve."""
    seen: set[int] = set()
    out = np.zeros(len(hash_ids), dtype=np.int64)
    for i, (ids, n) in enumerate(zip(hash_ids, input_tokens, strict=True)):
        n = int(n)
        used = list(ids[: -(-n // block_tokens)]) if n > 0 else []
        k = 0
        while k < len(used) and used[k] in seen:
            k += 1
        out[i] = min(k * block_tokens, n)
        seen.update(used)
    return out


def potential_hit_share(
    hash_ids: Sequence[Sequence[int]],
    input_tokens: Sequence[int],
    block_tokens: int = MOONCAKE_BLOCK_TOKENS,
) -> float:
    """Share of all prompt tokens an unbounded prefix cache could serve (0 when empty)."""
    total = float(np.sum(np.asarray(input_tokens, dtype=np.float64)))
    if total <= 0:
        return 0.0
    return float(hit_tokens(hash_ids, input_tokens, block_tokens).sum()) / total
