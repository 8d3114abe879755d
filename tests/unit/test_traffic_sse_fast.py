"""The client's fast path reads streams exactly as the general one does (no network).

`DeltaMatcher` skips JSON for plain content deltas and `body_blocks` drains the response
buffer per socket read; both may only save work: every chunk, split and line ending must
give the same events, texts, finish, usage and errors as `json.loads` and a line-by-line
parser.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from geventhttpclient.response import HTTPSocketResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from loadkit.apis.base import MalformedFrame as MalformedChunk
from loadkit.apis.openai import DeltaMatcher, interpret_chunk
from loadkit.apis.sse import SSEParser
from loadkit.traffic.bodyread import body_blocks

COMPACT = (",", ":")
MOCK_CHUNK = (
    '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795630819,'
    '"model":"gpt-4o-mini","system_fingerprint":"fp_mock","choices":[{"index":0,'
    '"delta":{"content":"lay "},"logprobs":null,"finish_reason":null}],"usage":null}'
)


def reference(data: bytes) -> tuple[str, bool] | str:
    """What the general path makes of a payload: (text, no finish/usage/error) or 'malformed'."""
    try:
        c = interpret_chunk(data.decode("utf-8", "replace"))
    except MalformedChunk:
        return "malformed"
    return c.text, c.finish_reason is None and c.usage is None and c.error is None


def check(matcher: DeltaMatcher, data: bytes) -> bytes | None:
    text = matcher.text(data)
    if text is not None:  # the fast path may only answer what the general path would
        ref = reference(data)
        assert ref == (text.decode("utf-8", "replace"), True), (data, text, ref)
    return text


def test_plain_deltas_of_the_mock_openai_and_vllm_take_the_fast_path() -> None:
    m = DeltaMatcher()
    assert check(m, MOCK_CHUNK.encode()) == b"lay "
    assert check(m, MOCK_CHUNK.replace("lay ", "toy ").encode()) == b"toy "
    assert check(m, MOCK_CHUNK.replace("lay ", "").encode()) == b""  # empty: not content
    openai = (
        '{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
        '"service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,'
        '"delta":{"content":" there"},"logprobs":null,"finish_reason":null}],'
        '"usage":null,"obfuscation":"aB3"}'
    )
    assert check(DeltaMatcher(), openai.encode()) == b" there"
    spaced = json.dumps(
        {"id": "x", "choices": [{"index": 0, "delta": {"content": "héllo"}, "stop_reason": None}]}
    )
    assert check(DeltaMatcher(), spaced.encode()) is None  # \u escapes: general path
    raw = json.dumps({"choices": [{"index": 0, "delta": {"content": "hé"}}]}, ensure_ascii=False)
    assert check(DeltaMatcher(), raw.encode()) == "hé".encode()


@pytest.mark.parametrize(
    "payload",
    [
        MOCK_CHUNK.replace('"content":"lay "', '"reasoning_content":"hmm"'),
        MOCK_CHUNK.replace('"content":"lay "', '"content":"a","reasoning_content":"b"'),
        MOCK_CHUNK.replace('"content":"lay "', '"role":"assistant","content":""'),
        MOCK_CHUNK.replace('"finish_reason":null', '"finish_reason":"stop"'),
        MOCK_CHUNK.replace('"usage":null', '"usage":{"prompt_tokens":1,"completion_tokens":2}'),
        MOCK_CHUNK.replace('"usage":null', '"error":"boom"'),
        MOCK_CHUNK.replace('"usage":null', '"choices":null'),
        MOCK_CHUNK.replace('"logprobs":null', '"delta":null'),
        MOCK_CHUNK.replace('"created":1795630819', '"created":01'),
        MOCK_CHUNK.replace("lay ", 'say \\"hi\\"'),
        MOCK_CHUNK.replace("lay ", "a\nb"),  # raw control character: not JSON
        MOCK_CHUNK.replace("}]", '},{"index":1,"delta":{"content":"x"}}]'),
        '{"error": {"message": "overloaded mid-stream"}}',
        "[DONE]",
        "{not json",
    ],
)
def test_anything_else_goes_to_the_general_path(payload: str) -> None:
    m = DeltaMatcher()
    assert check(m, MOCK_CHUNK.encode()) == b"lay "  # a frame is known...
    assert m.text(payload.encode()) is None  # ...and still not taken for this one


def test_truncated_deltas_never_match_and_altered_ones_agree_with_json() -> None:
    full = MOCK_CHUNK.encode()
    m = DeltaMatcher()
    assert check(m, full) == b"lay "
    for n in range(len(full)):
        assert check(m, full[:n]) is None
        for extra in (b"x", b'"', b"\\", b",", b"}"):
            check(m, full[:n] + extra + full[n:])  # matched only where JSON reads the same


_json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.text(max_size=12)
)
_delta = st.dictionaries(
    st.sampled_from(["content", "reasoning_content", "reasoning", "role", "refusal"]),
    st.one_of(st.text(max_size=8), st.none()),
    max_size=3,
)
_choice = st.fixed_dictionaries(
    {"index": st.just(0), "delta": _delta},
    optional={
        "logprobs": st.none(),
        "finish_reason": st.sampled_from([None, "stop", "length"]),
        "text": st.text(max_size=4),
    },
)
_chunk = st.fixed_dictionaries(
    {"choices": st.lists(_choice, max_size=2)},
    optional={
        "id": st.text(max_size=10),
        "created": st.integers(0, 2**40),
        "usage": st.one_of(st.none(), st.just({"prompt_tokens": 3, "completion_tokens": 1})),
        "error": st.one_of(st.none(), st.text(max_size=5)),
        "extra": _json_scalar,
    },
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_chunk, min_size=1, max_size=6),
    st.booleans(),
    st.booleans(),
)
def test_fast_path_agrees_with_json_on_generated_chunks(
    chunks: list[dict[str, Any]], compact: bool, ascii_only: bool
) -> None:
    m = DeltaMatcher()  # one matcher per stream: frames learnt from earlier chunks
    for obj in chunks:
        text = json.dumps(obj, separators=COMPACT if compact else None, ensure_ascii=ascii_only)
        check(m, text.encode())


STREAM = (
    b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    b": keep-alive\n\n"
    b'data: {"choices":[{"index":0,"delta":{"content":"a "}}]}\r\n\r\n'
    b"event: message\nid: 3\n"
    b'data: {"choices":[{"index":0,\ndata: "delta":{"content":"b "}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{"reasoning_content":"c "}}]}\n\n'
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]"  # the last event without its blank line (lenient)
)


class _Sock:
    """Serves a chunked HTTP response in the given pieces, one per recv."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def recv(self, n: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    def close(self) -> None:
        pass


def _wire(body: bytes) -> bytes:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    return head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"


def _events_line_by_line(body: bytes) -> list[str]:
    p = SSEParser()
    out = [d for line in body.splitlines(keepends=True) if (d := p.feed(line)) is not None]
    if (d := p.finish()) is not None:
        out.append(d)
    return out


def _events_by_reads(pieces: list[bytes]) -> list[str]:
    resp = HTTPSocketResponse(_Sock(pieces), method="POST")
    p = SSEParser()
    return [e.decode() for _, block in body_blocks(resp) for e in p.feed_lines(block)]


def test_every_split_of_the_body_gives_the_same_events_as_line_by_line() -> None:
    expected = _events_line_by_line(STREAM)
    assert len(expected) == 6 and expected[-1] == "[DONE]"
    assert '"delta":{"content":"b "}' in expected[2].replace("\n", "")
    wire = _wire(STREAM)
    start = wire.index(b"\r\n\r\n") + 4
    for cut in range(start, len(wire)):
        assert _events_by_reads([wire[:cut], wire[cut:]]) == expected, cut
    assert _events_by_reads([bytes([b]) for b in wire]) == expected  # a byte per read


class _LinesOnly:
    """A response without geventhttpclient's body buffer: only `readline(b"\\n")`."""

    def __init__(self, body: bytes) -> None:
        self.lines = body.splitlines(keepends=True)

    def readline(self, sep: bytes) -> bytes:
        assert sep == b"\n"
        return self.lines.pop(0) if self.lines else b""


def test_a_response_without_the_body_buffer_falls_back_to_readline() -> None:
    p = SSEParser()
    events = [
        e.decode() for _, block in body_blocks(_LinesOnly(STREAM)) for e in p.feed_lines(block)
    ]
    assert events == _events_line_by_line(STREAM)
