"""Prefix cache: prompts that share leading blocks with recent prompts get cached tokens.

Like vLLM's automatic prefix caching, the prompt is cut into blocks of `block_tokens`
tokens (4 characters each, the project's token estimate) whose hashes chain, so a block
hits only if everything before it matched too. An LRU bounds the number of blocks kept.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from loadkit.tokens import CHARS_PER_TOKEN
from mocks.profile import PrefixCache as PrefixCacheConfig


class PrefixCache:
    def __init__(self, config: PrefixCacheConfig) -> None:
        self.config = config
        self._blocks: OrderedDict[bytes, None] = OrderedDict()

    def configure(self, config: PrefixCacheConfig) -> None:
        if config != self.config:
            self.config = config
            self._blocks.clear()

    def clear(self) -> None:
        self._blocks.clear()

    def lookup_and_insert(self, text: str, prompt_tokens: int) -> int:
        """Cached tokens for this prompt; then remember its blocks."""
        cfg = self.config
        if not cfg.enabled or prompt_tokens < cfg.min_prompt_tokens:
            return 0
        width = cfg.block_tokens * CHARS_PER_TOKEN
        n_blocks = len(text) // width
        blocks = self._blocks
        digest = b""
        hits = 0
        missed = False
        data = text.encode("utf-8", "surrogatepass")
        for i in range(n_blocks):
            digest = hashlib.blake2b(
                data[i * width : (i + 1) * width], key=digest[:64], digest_size=16
            ).digest()
            if not missed and digest in blocks:
                blocks.move_to_end(digest)
                hits += 1
            else:
                missed = True
                blocks[digest] = None
        while len(blocks) > cfg.capacity_blocks:
            blocks.popitem(last=False)
        # A fully cached prompt still computes its last token, as vLLM does.
        return min(hits * cfg.block_tokens, max(0, prompt_tokens - 1))
