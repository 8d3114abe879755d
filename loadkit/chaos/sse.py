"""Just enough stream understanding for mid-stream faults: frame boundaries and frame kinds.

Only a stream that a mid-stream fault selected is parsed; every other stream passes through
as raw bytes. A "token" is a content-bearing frame, which is one token per frame for the
mock and for most providers, counted the way the client counts it: OpenAI's and Azure's
chunks by `loadkit.apis.openai`, Anthropic's events by its decoder (text and thinking
deltas), a team's own service (`api: http`) frame by frame: every SSE event with data,
every NDJSON line, every chunk of plain text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from loadkit.apis.anthropic import AnthropicDecoder
from loadkit.apis.base import NDJSON, SSE, MalformedFrame
from loadkit.apis.openai import carries_content

CONTENT, USAGE, DONE, OTHER = "content", "usage", "done", "other"


class FrameSplitter:
    """Feeds bytes, yields whole frames (each ending with its blank line)."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        self._buf += chunk
        while True:
            i = self._buf.find(b"\n\n")
            if i < 0:
                return
            frame, self._buf = self._buf[: i + 2], self._buf[i + 2 :]
            yield frame

    def rest(self) -> bytes:
        out, self._buf = self._buf, b""
        return out


class LineSplitter(FrameSplitter):
    """NDJSON: every line is a frame."""

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self._buf += chunk
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                return
            frame, self._buf = self._buf[: i + 1], self._buf[i + 1 :]
            yield frame


class ChunkSplitter(FrameSplitter):
    """Chunked plain text: every piece that arrives is a frame."""

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        if chunk:
            yield chunk


def splitter(framing: str) -> FrameSplitter:
    if framing == SSE:
        return FrameSplitter()
    return LineSplitter() if framing == NDJSON else ChunkSplitter()


def classify(frame: bytes, api: str = "openai", framing: str = SSE) -> str:
    """CONTENT, USAGE (a usage-only chunk), DONE or OTHER (role chunk, finish, comments)."""
    if framing != SSE:
        return CONTENT if frame.strip() else OTHER
    data = b""
    event = ""
    for line in frame.split(b"\n"):
        if line.startswith(b"data:"):
            data += line[5:].strip()
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
    if not data:
        return OTHER
    if api == "http":
        return CONTENT
    if api == "anthropic":
        try:
            f = AnthropicDecoder().frame(data, event)
        except MalformedFrame:
            return OTHER
        return CONTENT if f.content else DONE if f.end else OTHER
    if data == b"[DONE]":
        return DONE
    try:
        obj = json.loads(data)
    except ValueError:
        return OTHER
    if not isinstance(obj, dict):
        return OTHER
    choices = obj.get("choices")
    if isinstance(choices, list) and choices:
        return CONTENT if carries_content(obj) else OTHER
    if obj.get("usage"):
        return USAGE
    return OTHER
