"""What counts as content in an OpenAI streamed chunk: one definition for the client (TTFT,
ITL) and the chaos proxy (where `after_tokens` counts), so both count the same frames.

A choice carries content when it has text: `delta.content`, `delta.reasoning_content` or
`delta.reasoning` (chat; reasoning counts, the user waits for it too), or `text`
(/v1/completions, whose choices have no delta). Only strings count. A leaf module: the
client's hot path imports it, and chaos and traffic must not import each other.
"""

from __future__ import annotations

from typing import Any


def choice_text(choice: dict[str, Any]) -> str:
    """The text one choice of a chunk carries ("" when none)."""
    delta = choice.get("delta")
    if delta is None:
        text = choice.get("text")  # /v1/completions
        return text if type(text) is str else ""
    if type(delta) is not dict:
        return ""
    text = delta.get("content")
    if type(text) is not str:
        text = ""
    if "reasoning_content" in delta or "reasoning" in delta:
        for key in ("reasoning_content", "reasoning"):
            extra = delta.get(key)
            if type(extra) is str:
                text += extra
    return text


def carries_content(chunk: dict[str, Any]) -> bool:
    """Whether a parsed chunk carries content in any of its choices."""
    choices = chunk.get("choices")
    if type(choices) is not list:
        return False
    return any(type(c) is dict and choice_text(c) for c in choices)
