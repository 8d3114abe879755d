"""OpenAI's API: chat completions, completions and embeddings, streamed as SSE chunks.

What counts as content (one definition for the client's TTFT and ITL and the chaos proxy's
`after_tokens`): a choice carries content when it has text: `delta.content`,
`delta.reasoning_content` or `delta.reasoning` (chat; reasoning counts, the user waits for
it too), or `text` (/v1/completions, whose choices have no delta). Only strings count.

The hot path: nearly every event of a stream is a plain content delta, one choice whose
delta holds only `content`, nothing else but scalar fields and nulls. `DeltaMatcher`
recognises exactly that shape with one regular-expression match on the raw bytes, about
four times cheaper than `json.loads`; any other event (role, reasoning, tool calls, finish
reason, usage, error frames, escaped text, several choices, malformed JSON) does not match
and goes through `interpret_chunk`, so the fast path can only skip work, never change a
result.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from loadkit.apis.base import (
    END,
    NOTHING,
    Classified,
    Decoder,
    Endpoint,
    Frame,
    MalformedFrame,
    PlannedCall,
    ProviderApi,
    Usage,
    model_for,
    prompt_text,
)

DONE = "[DONE]"
_DONE = DONE.encode()
PATHS: dict[str, str] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
}


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


class Chunk(NamedTuple):
    """What one streamed JSON chunk means to the client (a tuple: built once per token)."""

    text: str  # content or reasoning text carried (may be "")
    content: bool  # carries text or reasoning: counts for TTFT and ITL
    finish_reason: str | None
    usage: dict[str, Any] | None
    error: str | None
    model: str = ""  # the chunk's `model`: who the service says is answering


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
        raise MalformedFrame(f"not JSON: {data[:80]!r}") from exc
    if type(obj) is not dict:
        raise MalformedFrame(f"not a JSON object: {data[:80]!r}")
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
                raise MalformedFrame(f"bad choice in {data[:80]!r}")
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


def usage_tokens(usage: dict[str, Any] | None) -> Usage | None:
    """Usage from an OpenAI usage object, None if absent."""
    if not usage:
        return None
    try:
        prompt = int(usage.get("prompt_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        cached = int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0
    except (TypeError, ValueError):
        return None
    return Usage(prompt, completion, cached)


# -- the decoder ----------------------------------------------------------------------------


class OpenAIDecoder(Decoder):
    """Chat and completions chunks; `[DONE]` ends the stream."""

    def __init__(self) -> None:
        self._matcher = DeltaMatcher()
        self.fast_text = self._matcher.text  # type: ignore[method-assign]

    def frame(self, data: bytes, event: str = "") -> Frame:
        if data == _DONE:
            return END
        chunk = interpret_chunk(data.decode("utf-8", "replace"))
        if chunk.error is not None:
            return Frame(error=chunk.error)
        if not (chunk.content or chunk.finish_reason or chunk.usage or chunk.model):
            return NOTHING
        return Frame(
            chunk.text,
            chunk.content,
            str(chunk.finish_reason)[:40] if chunk.finish_reason else None,
            usage_tokens(chunk.usage),
            chunk.model,
        )

    def whole(self, obj: Any) -> Frame:
        return whole_answer(obj)


def whole_answer(obj: Any, embeddings: bool = False) -> Frame:
    """A non-streamed OpenAI answer (chat, completions or embeddings) as one frame."""
    if not isinstance(obj, dict):
        raise MalformedFrame("response is not a JSON object")
    usage = usage_tokens(obj.get("usage"))
    model = obj.get("model")
    model = model if isinstance(model, str) else ""
    if embeddings:
        if not isinstance(obj.get("data"), list):
            raise MalformedFrame("embeddings response without data")
        return Frame(usage=usage, model=model, end=True)
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedFrame("response without choices")
    c0 = choices[0]
    finish = c0.get("finish_reason")
    msg = c0.get("message")
    if isinstance(msg, dict):
        parts = (msg.get("content"), msg.get("reasoning_content"), msg.get("reasoning"))
        text = "".join(p for p in parts if isinstance(p, str))
    else:
        text = c0.get("text") if isinstance(c0.get("text"), str) else ""
    return Frame(
        text, bool(text), finish if isinstance(finish, str) else "", usage, model, end=True
    )


def error_message(body: bytes) -> str:
    """`error.message` of an OpenAI-shaped error body ("" when it has none)."""
    try:
        obj = json.loads(body)
    except ValueError:
        return ""
    err = obj.get("error") if isinstance(obj, dict) else None
    msg = err.get("message") if isinstance(err, dict) else err
    return str(msg)[:200] if msg else ""


def classified(status: int, body: bytes) -> Classified:
    """A non-2xx answer with an OpenAI-shaped error body (or none)."""
    msg = error_message(body)
    return Classified(status_outcome(status), f"HTTP {status}: {msg}" if msg else f"HTTP {status}")


def status_outcome(status: int) -> str:
    """The outcome of a completed HTTP exchange by its status code."""
    if status == 429:
        return "rate_limited"
    if 200 <= status < 300:
        return "ok"
    return "http_error"


# -- the entry ------------------------------------------------------------------------------


class OpenAIApi(ProviderApi):
    name: ClassVar[str] = "openai"
    title: ClassVar[str] = "OpenAI (and every OpenAI-compatible server: vLLM, llama.cpp, LiteLLM)"
    kinds = ("chat", "completions", "embeddings")

    def path(self, ep: Endpoint, kind: str) -> str:
        return PATHS[kind]

    def body(self, ep: Endpoint, call: PlannedCall) -> dict[str, Any]:
        return openai_body(call, model_for(ep, call))

    def decoder(self, ep: Endpoint, call: PlannedCall) -> Decoder:
        return OpenAIDecoder()

    def classify(self, status: int, body: bytes, headers: Mapping[str, str]) -> Classified:
        return classified(status, body)

    def models_path(self, ep: Endpoint) -> str | None:
        return "/v1/models"


def openai_body(call: PlannedCall, model: str) -> dict[str, Any]:
    """The OpenAI request body for a planned call."""
    body: dict[str, Any] = {"model": model}
    if call.kind == "embeddings":
        body["input"] = call.input if call.input is not None else prompt_text(call)
        return {**body, **call.extra_body}
    if call.kind == "chat":
        body["messages"] = [dict(m) for m in call.messages or ()]
    else:
        body["prompt"] = call.prompt if call.prompt is not None else prompt_text(call)
    if call.max_tokens is not None:
        body["max_tokens"] = call.max_tokens
    if call.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return {**body, **call.extra_body}


API = OpenAIApi()
