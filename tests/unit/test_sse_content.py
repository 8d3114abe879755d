"""One definition of a content-bearing chunk: the proxy's `after_tokens` counts the frames
the client's TTFT and ITL count."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loadkit.apis.openai import carries_content, choice_text, interpret_chunk
from loadkit.chaos.sse import CONTENT, classify

CHUNKS: list[dict[str, Any]] = [
    {"choices": [{"index": 0, "delta": {"content": "hi"}}]},
    {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
    {"choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}]},
    {"choices": [{"index": 0, "delta": {"reasoning": "hm", "content": None}}]},
    {"choices": [{"index": 0, "text": "done"}]},  # /v1/completions
    {"choices": [{"index": 0, "text": ""}]},
    {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"choices": [{"index": 0, "delta": {"content": 7}}]},  # not a string: no text
    {"choices": [{"index": 0, "delta": "x"}]},
    {"choices": [{"index": 0, "delta": {}}, {"index": 1, "delta": {"content": "b"}}]},
    {"choices": [], "usage": {"completion_tokens": 2}},
]


@pytest.mark.parametrize("chunk", CHUNKS, ids=range(len(CHUNKS)))
def test_proxy_and_client_count_the_same_frames(chunk: dict[str, Any]) -> None:
    data = json.dumps(chunk)
    client = interpret_chunk(data).content
    assert carries_content(chunk) is client
    assert (classify(f"data: {data}\n\n".encode()) == CONTENT) is client


def test_choice_text() -> None:
    assert choice_text({"delta": {"content": "a", "reasoning": "b"}}) == "ab"
    assert choice_text({"text": "c"}) == "c"
    assert choice_text({"delta": None, "text": 3}) == ""
