"""Server-sent events as OpenAI streams them, parsed one line at a time as bytes arrive.

The client reads the body with `readline(b"\\n")` (geventhttpclient's default separator
is `\\r\\n`, which SSE bodies never contain, so it would wait for the whole body) and feeds
each line here. `SSEParser` turns lines into event payloads (the `data:` field, joined
over continuation lines, dispatched on the blank line); `interpret_chunk` reads what an
OpenAI chat or completions chunk carries: content text (reasoning deltas count as
content for TTFT), usage, finish reason or an error object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DONE = "[DONE]"


class SSEParser:
    """Feed raw lines (bytes, with or without their line ending); get complete event data."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, raw: bytes) -> str | None:
        """Returns the data of an event completed by this line, else None."""
        line = raw.rstrip(b"\r\n")
        if not line:
            if not self._data:
                return None
            data = "\n".join(self._data)
            self._data = []
            return data
        if line.startswith(b"data:"):
            value = line[5:]
            if value.startswith(b" "):
                value = value[1:]
            self._data.append(value.decode("utf-8", "replace"))
        # comments (":"), "event:", "id:", "retry:" lines carry nothing the client needs
        return None

    def finish(self) -> str | None:
        """Data of an event the stream ended without a blank line after (lenient)."""
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        return data


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one streamed JSON chunk means to the client."""

    text: str  # content or reasoning text carried (may be "")
    content: bool  # carries text or reasoning: counts for TTFT and ITL
    finish_reason: str | None
    usage: dict[str, Any] | None
    error: str | None


class MalformedChunk(ValueError):
    """A `data:` payload that is not an OpenAI chunk."""


def _text_of(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        parts = [
            delta.get("content"),
            delta.get("reasoning_content"),
            delta.get("reasoning"),
        ]
        return "".join(p for p in parts if isinstance(p, str))
    text = choice.get("text")  # /v1/completions
    return text if isinstance(text, str) else ""


def interpret_chunk(data: str) -> Chunk:
    """Parse one event payload (not `[DONE]`)."""
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise MalformedChunk(f"not JSON: {data[:80]!r}") from exc
    if not isinstance(obj, dict):
        raise MalformedChunk(f"not a JSON object: {data[:80]!r}")
    err = obj.get("error")
    if err:
        msg = err.get("message") if isinstance(err, dict) else str(err)
        return Chunk("", False, None, None, str(msg or err))
    choices = obj.get("choices") or ()
    text = ""
    finish: str | None = None
    has_text = False
    for choice in choices:
        if not isinstance(choice, dict):
            raise MalformedChunk(f"bad choice in {data[:80]!r}")
        piece = _text_of(choice)
        if piece:
            text += piece
            has_text = True
        finish = choice.get("finish_reason") or finish
    usage = obj.get("usage")
    return Chunk(text, has_text, finish, usage if isinstance(usage, dict) else None, None)


def usage_tokens(usage: dict[str, Any] | None) -> tuple[int, int, int] | None:
    """(prompt, completion, cached) from an OpenAI usage object, None if absent."""
    if not usage:
        return None
    try:
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    except (TypeError, ValueError):
        return None
    return prompt, completion, cached
