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
from typing import Any, NamedTuple

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


class Chunk(NamedTuple):
    """What one streamed JSON chunk means to the client (a tuple: built once per token)."""

    text: str  # content or reasoning text carried (may be "")
    content: bool  # carries text or reasoning: counts for TTFT and ITL
    finish_reason: str | None
    usage: dict[str, Any] | None
    error: str | None


class MalformedChunk(ValueError):
    """A `data:` payload that is not an OpenAI chunk."""


_loads = json.loads


def _text_of(choice: dict[str, Any]) -> str:
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


def interpret_chunk(data: str) -> Chunk:
    """Parse one event payload (not `[DONE]`)."""
    try:
        obj = _loads(data)
    except ValueError as exc:
        raise MalformedChunk(f"not JSON: {data[:80]!r}") from exc
    if type(obj) is not dict:
        raise MalformedChunk(f"not a JSON object: {data[:80]!r}")
    err = obj.get("error")
    if err:
        msg = err.get("message") if type(err) is dict else str(err)
        return Chunk("", False, None, None, str(msg or err))
    text = ""
    finish: str | None = None
    choices = obj.get("choices")
    if choices:
        for choice in choices:
            if type(choice) is not dict:
                raise MalformedChunk(f"bad choice in {data[:80]!r}")
            text += _text_of(choice)
            finish = choice.get("finish_reason") or finish
    usage = obj.get("usage")
    return Chunk(text, bool(text), finish, usage if type(usage) is dict else None, None)


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
