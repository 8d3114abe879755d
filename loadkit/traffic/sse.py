"""Server-sent events as OpenAI streams them, parsed as bytes arrive.

The client hands over the body in blocks of complete lines, one block per socket read
(see `loadkit.traffic.client`); `SSEParser.feed_lines` turns them into event payloads (the
`data:` field, joined over continuation lines, dispatched on the blank line) and
`interpret_chunk` reads what an OpenAI chat or completions chunk carries: content text
(what counts as content: `loadkit.apis.openai`, shared with the chaos proxy), usage,
finish reason or an error object.

The hot path: nearly every event of a stream is a plain content delta, one choice whose
delta holds only `content`, nothing else but scalar fields and nulls. `content_delta`
recognises exactly that shape with one regular-expression match on the raw bytes, about
four times cheaper than `json.loads`; any other event (role, reasoning, tool calls, finish
reason, usage, error frames, escaped text, several choices, malformed JSON) does not match
and goes through `interpret_chunk`, so the fast path can only skip work, never change a
result.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from loadkit.apis.openai import choice_text

DONE = "[DONE]"


class SSEParser:
    """Feed raw lines; get complete event payloads."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: list[bytes] = []

    def feed_lines(self, block: bytes) -> list[bytes]:
        """Payloads of the events completed by `block`: complete lines joined by `\\n`,
        without the last line's ending (one socket read's worth)."""
        events: list[bytes] = []
        data = self._data
        for line in block.split(b"\n"):
            if line[-1:] == b"\r":
                line = line[:-1]
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line[:5] == b"data:":
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            # comments (":"), "event:", "id:", "retry:" lines carry nothing the client needs
        return events

    def feed(self, raw: bytes) -> str | None:
        """One line (with or without its ending): the data of an event it completes, else None."""
        events = self.feed_lines(raw.rstrip(b"\r\n"))
        return events[0].decode("utf-8", "replace") if events else None

    def finish(self) -> str | None:
        """Data of an event the stream ended without a blank line after (lenient)."""
        if not self._data:
            return None
        data = b"\n".join(self._data).decode("utf-8", "replace")
        self._data.clear()
        return data


class Chunk(NamedTuple):
    """What one streamed JSON chunk means to the client (a tuple: built once per token)."""

    text: str  # content or reasoning text carried (may be "")
    content: bool  # carries text or reasoning: counts for TTFT and ITL
    finish_reason: str | None
    usage: dict[str, Any] | None
    error: str | None
    model: str = ""  # the chunk's `model`: who the service says is answering


class MalformedChunk(ValueError):
    """A `data:` payload that is not an OpenAI chunk."""


_loads = json.loads

# One plain content delta: scalar fields, then exactly one choice {"index": 0, "delta":
# {"content": TEXT}} followed only by null fields (logprobs, finish_reason...), then scalar
# fields. Strings hold no backslash and no control character, so every quote delimits a
# string and TEXT is the raw UTF-8 text; a scalar field may not be "error" or "choices" nor
# a null field "delta" (a duplicate key would change what json.loads sees). What matches
# is valid JSON that `interpret_chunk` reads as exactly (TEXT, content, no finish, no usage).
# Possessive quantifiers: no backtracking into what a part has matched.
_TEXT = rb'[^"\\\x00-\x1f]*+'
_VALUE = rb'(?:"' + _TEXT + rb'"|-?(?:0|[1-9][0-9]*+)|null|true|false)'
_SCALAR = rb'"(?!error"|choices")[A-Za-z_]++": ?' + _VALUE
_CONTENT_DELTA = re.compile(
    rb"\{ ?(?:" + _SCALAR + rb", ?)*+"
    rb'"choices": ?\[\{"index": ?0, ?"delta": ?\{"content": ?"(' + _TEXT + rb')"\}'
    rb'(?:, ?"(?!delta")[A-Za-z_]++": ?null)*+\}\]'
    rb"(?:, ?" + _SCALAR + rb")*+ ?\}"
)
_PLAIN_TEXT = re.compile(_TEXT)


class DeltaMatcher:
    """Finds the text of plain content deltas without JSON (None: not one, ask `interpret_chunk`).

    A stream's content deltas differ only in their text, so the frame around the text of
    the first one the pattern matched is kept: a later payload that is that frame around a
    plain string is a content delta of the same shape (valid by construction), checked with
    two comparisons and a scan of the text instead of the full pattern.
    """

    __slots__ = ("_frame", "_prefix", "_suffix")

    def __init__(self) -> None:
        self._prefix = self._suffix = b""
        self._frame = -1  # len(prefix) + len(suffix); -1 until a frame is known

    def text(self, data: bytes) -> bytes | None:
        frame = self._frame
        if (
            0 <= frame <= len(data)
            and data.startswith(self._prefix)
            and data.endswith(self._suffix)
        ):
            text = data[len(self._prefix) : len(data) - len(self._suffix)]
            if _PLAIN_TEXT.fullmatch(text) is not None:
                return text
        m = _CONTENT_DELTA.fullmatch(data)
        if m is None:
            return None
        start, end = m.span(1)
        self._prefix, self._suffix = data[:start], data[end:]
        self._frame = len(data) - (end - start)
        return m.group(1)


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
            text += choice_text(choice)
            finish = choice.get("finish_reason") or finish
    usage = obj.get("usage")
    model = obj.get("model")
    return Chunk(
        text,
        bool(text),
        finish,
        usage if type(usage) is dict else None,
        None,
        model if type(model) is str else "",
    )


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
