"""SSE line parsing and OpenAI chunk interpretation (no network)."""

from __future__ import annotations

import json

import pytest

from loadkit.apis.base import MalformedFrame as MalformedChunk
from loadkit.apis.openai import DONE, interpret_chunk, usage_tokens
from loadkit.apis.sse import SSEParser


def feed_all(raw: bytes) -> list[str]:
    p = SSEParser()
    out = [d for line in raw.splitlines(keepends=True) if (d := p.feed(line)) is not None]
    if (d := p.finish()) is not None:
        out.append(d)
    return out


def test_events_are_dispatched_on_the_blank_line():
    raw = b'data: {"a":1}\n\n: keep-alive comment\n\ndata: {"b":2}\r\n\r\ndata: [DONE]\n\n'
    assert feed_all(raw) == ['{"a":1}', '{"b":2}', DONE]


def test_multi_line_data_joins_and_other_fields_are_ignored():
    raw = b"event: message\nid: 7\nretry: 100\ndata: line one\ndata:line two\n\n"
    assert feed_all(raw) == ["line one\nline two"]


def test_a_last_event_without_blank_line_is_still_delivered():
    assert feed_all(b"data: [DONE]") == [DONE]
    assert feed_all(b"") == []


def test_chat_content_and_reasoning_both_count_as_content():
    role = interpret_chunk(json.dumps({"choices": [{"delta": {"role": "assistant"}}]}))
    assert not role.content and role.text == ""
    text = interpret_chunk(json.dumps({"choices": [{"delta": {"content": "Hi"}}]}))
    assert text.content and text.text == "Hi"
    think = interpret_chunk(json.dumps({"choices": [{"delta": {"reasoning_content": "hmm"}}]}))
    assert think.content and think.text == "hmm"
    think2 = interpret_chunk(json.dumps({"choices": [{"delta": {"reasoning": "so"}}]}))
    assert think2.content


def test_completions_text_finish_reason_and_usage():
    c = interpret_chunk(json.dumps({"choices": [{"text": "abc", "finish_reason": None}]}))
    assert c.content and c.text == "abc" and c.finish_reason is None
    end = interpret_chunk(json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]}))
    assert end.finish_reason == "stop" and not end.content
    usage = {
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    u = interpret_chunk(json.dumps({"choices": [], "usage": usage}))
    assert usage_tokens(u.usage) == (12, 5, 8, 0)
    assert usage_tokens(None) is None
    assert usage_tokens({"prompt_tokens": 3, "completion_tokens": 1}) == (3, 1, 0, 0)


def test_error_frames_and_malformed_payloads():
    err = interpret_chunk(json.dumps({"error": {"message": "overloaded", "type": "server"}}))
    assert err.error == "overloaded" and not err.content
    with pytest.raises(MalformedChunk):
        interpret_chunk("{not json")
    with pytest.raises(MalformedChunk):
        interpret_chunk("[1, 2]")
    with pytest.raises(MalformedChunk):
        interpret_chunk(json.dumps({"choices": ["x"]}))
