"""The one token estimate used wherever no tokenizer's count is available.

OpenAI's rule of thumb for English text is about 4 characters per token
(help.openai.com, "What are tokens and how to count them?"). The mock provider counts
prompts with it and the synthetic prompt generator writes text to it, so the counts the
client plans, the mock reports and the client estimates agree with each other.
"""

from __future__ import annotations

CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    """Tokens in `text` by the 4-characters rule (0 for an empty string)."""
    return -(-len(text) // CHARS_PER_TOKEN)
