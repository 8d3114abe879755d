"""Just enough SSE understanding for mid-stream faults: frame boundaries and frame kinds.

Only a stream that a mid-stream fault selected is parsed; every other stream passes through
as raw bytes. A "token" is a content-bearing frame (`loadkit.apis.openai`, the client's
definition too: text or reasoning), which is one token per frame for the mock and for
most providers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

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


def classify(frame: bytes) -> str:
    """CONTENT, USAGE (a usage-only chunk), DONE or OTHER (role chunk, finish, comments)."""
    data = b""
    for line in frame.split(b"\n"):
        if line.startswith(b"data:"):
            data += line[5:].strip()
    if not data:
        return OTHER
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
