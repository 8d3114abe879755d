"""Anthropic's Messages API on the mock, driven by the official `anthropic` SDK, unchanged.

One mock per module (a subprocess on loopback) with four regions: `main` for the plain
calls, `tight` (one request per second per key) for 429s, `busy` (one slot, no queue,
real-time latency) for 529s, and `storm` (real-time latency) to overload mid-stream.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import anthropic
import pytest

from loadkit.serving.launch import ServerProcess
from loadkit.tokens import estimate_tokens
from tests.conftest import FAST_MOCK, _start, http_request

KEY = "sk-ant-mock-key-0001"
MODEL = "claude-sonnet-4-5"
MSGS = [{"role": "user", "content": "Say hello."}]
CONFIG = {
    **FAST_MOCK,
    "require_api_key": True,
    "api_keys": [KEY],
    "regions": {
        "main": {},
        "tight": {"rate_limits": {"rpm": 60, "tpm": None, "burst_seconds": 1}},
        "busy": {"max_num_seqs": 1, "max_waiting": 0, "latency_scale": 1.0},
        "storm": {"latency_scale": 1.0},
    },
}


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = _start(tmp_path_factory.mktemp("mock-anthropic"), CONFIG)
    try:
        yield server
    finally:
        server.stop()


def client(mock: ServerProcess, region: str = "main", **kw: object) -> anthropic.Anthropic:
    opts: dict[str, object] = {"api_key": KEY, "max_retries": 0, "timeout": 20.0}
    opts.update(kw)
    return anthropic.Anthropic(base_url=f"{mock.url}/{region}", **opts)  # type: ignore[arg-type]


def test_stream_events_text_usage_and_stop_reason(mock: ServerProcess) -> None:
    c = client(mock)
    with c.messages.stream(model=MODEL, max_tokens=6, messages=MSGS) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 6 == estimate_tokens(text)
    assert final.usage.input_tokens == estimate_tokens(MSGS[0]["content"])
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.model == MODEL
    # the raw events, in Anthropic's order
    events = c.messages.create(model=MODEL, max_tokens=3, messages=MSGS, stream=True)
    kinds = [e.type for e in events]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_models_list_in_anthropics_shape_beside_openais(mock: ServerProcess) -> None:
    c = client(mock)
    ids = [m.id for m in c.models.list()]
    assert MODEL in ids and "gpt-4o-mini" in ids and "text-embedding-3-small" not in ids
    assert c.models.retrieve("claude-3-7-sonnet-latest").type == "model"
    with pytest.raises(anthropic.NotFoundError):
        c.models.retrieve("no-such-model")
    # the same path without anthropic-version is still OpenAI's list
    plain = http_request(
        "GET", f"{mock.url}/main/v1/models", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert plain.json()["object"] == "list"


def test_sse_lines_and_ground_truth_headers(mock: ServerProcess) -> None:
    body = {"model": MODEL, "max_tokens": 2, "messages": MSGS, "stream": True}
    req = urllib.request.Request(
        f"{mock.url}/main/v1/messages",
        data=json.dumps(body).encode(),
        headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read().decode()
        headers = resp.headers
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["request-id"].startswith("req_")
    assert float(headers["x-mock-ttft-ms"]) >= 0 and headers["x-mock-region"] == "main"
    frames = [f for f in raw.split("\n\n") if f]
    names = [f.split("\n")[0] for f in frames]
    assert names[0] == "event: message_start" and names[2] == "event: ping"
    assert names[-1] == "event: message_stop"
    delta = json.loads(frames[3].split("\n")[1][len("data: ") :])
    assert delta["delta"]["type"] == "text_delta" and delta["index"] == 0
    start = json.loads(frames[0].split("\n")[1][len("data: ") :])["message"]
    assert start["stop_reason"] is None and start["content"] == []
    assert set(start["usage"]) >= {
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    }


def test_whole_message_ends_its_turn(mock: ServerProcess) -> None:
    msg = client(mock).messages.create(
        model=MODEL,
        max_tokens=4000,
        system="You are terse.",
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "Hi there"}]},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "And now?"},
        ],
        extra_body={"temperature": 0.2, "metadata": {"user_id": "u-1"}},
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert msg.usage.output_tokens == estimate_tokens(msg.content[0].text) < 4000
    prompt = sum(estimate_tokens(t) for t in ("You are terse.", "Hi there", "Hello.", "And now?"))
    assert msg.usage.input_tokens == prompt
    assert msg.usage.cache_read_input_tokens == 0 == msg.usage.cache_creation_input_tokens


def test_stop_sequence_ends_the_answer(mock: ServerProcess) -> None:
    # every mock token is a word and a space: " " stops the answer after its first token
    msg = client(mock).messages.create(
        model=MODEL, max_tokens=50, messages=MSGS, stop_sequences=[" "]
    )
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == " "
    assert msg.usage.output_tokens == 1 == estimate_tokens(msg.content[0].text)


def test_cache_control_reads_and_writes_the_prefix_cache(mock: ServerProcess) -> None:
    system = [
        {
            "type": "text",
            "text": "policy " * 900,  # 1,575 tokens: over the profile's 1,024-token minimum
            "cache_control": {"type": "ephemeral"},
        }
    ]
    prefix = estimate_tokens(system[0]["text"])
    c = client(mock)
    first = c.messages.create(model=MODEL, max_tokens=2, system=system, messages=MSGS)
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation_input_tokens == prefix
    assert first.usage.input_tokens == estimate_tokens(MSGS[0]["content"])
    other = [{"role": "user", "content": "A different question."}]
    second = c.messages.create(model=MODEL, max_tokens=2, system=system, messages=other)
    read = second.usage.cache_read_input_tokens
    assert read > 0 and read % 128 == 0  # whole cache blocks of the hosted-api profile
    assert read + second.usage.cache_creation_input_tokens == prefix
    assert second.usage.input_tokens == estimate_tokens(other[0]["content"])
    # without a breakpoint nothing is read or written, as Anthropic does
    plain = c.messages.create(model=MODEL, max_tokens=2, system=system[0]["text"], messages=other)
    assert plain.usage.cache_read_input_tokens == 0 == plain.usage.cache_creation_input_tokens
    assert plain.usage.input_tokens == prefix + estimate_tokens(other[0]["content"])


def test_errors_are_the_sdks_own_exceptions(mock: ServerProcess) -> None:
    with pytest.raises(anthropic.AuthenticationError) as auth:
        client(mock, api_key="sk-ant-wrong").messages.create(
            model=MODEL, max_tokens=2, messages=MSGS
        )
    assert auth.value.status_code == 401 and auth.value.request_id
    assert auth.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as nf:
        client(mock).messages.create(model="gpt-nope", max_tokens=2, messages=MSGS)
    assert nf.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        client(mock).messages.create(
            model=MODEL, max_tokens=2, messages=MSGS, extra_body={"temperature": 5}
        )
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as version:
        client(mock, default_headers={"anthropic-version": "latest"}).messages.create(
            model=MODEL, max_tokens=2, messages=MSGS
        )
    assert "anthropic-version" in version.value.message


def _post(mock: ServerProcess, body: bytes | dict[str, object], **headers: str) -> object:
    h = {"x-api-key": KEY, "anthropic-version": "2023-06-01", **headers}
    h = {k: v for k, v in h.items() if v}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http_request("POST", f"{mock.url}/main/v1/messages", content=content, headers=h)


MALFORMED: list[bytes | dict[str, object]] = [
    b"",
    b"{",
    b"[1, 2]",
    b"\xff\xfe",
    b"[" * 50_000,
    {"model": MODEL, "messages": MSGS},  # no max_tokens
    {"model": MODEL, "max_tokens": "8", "messages": MSGS},
    {"model": MODEL, "max_tokens": 0, "messages": MSGS},
    {"max_tokens": 8, "messages": MSGS},
    {"model": 7, "max_tokens": 8, "messages": MSGS},
    {"model": MODEL, "max_tokens": 8},
    {"model": MODEL, "max_tokens": 8, "messages": []},
    {"model": MODEL, "max_tokens": 8, "messages": "hi"},
    {"model": MODEL, "max_tokens": 8, "messages": [7]},
    {"model": MODEL, "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]},
    {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user"}]},
    {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": 5}]},
    {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": [{"type": 1}]}]},
    {
        "model": MODEL,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": [{"type": "text"}]}],
    },
    {"model": MODEL, "max_tokens": 8, "messages": MSGS, "system": 5},
    {"model": MODEL, "max_tokens": 8, "messages": MSGS, "system": [{"type": "image"}]},
    {"model": MODEL, "max_tokens": 8, "messages": MSGS, "stream": "yes"},
    {"model": MODEL, "max_tokens": 8, "messages": MSGS, "stop_sequences": "x"},
    {"model": MODEL, "max_tokens": 8, "messages": MSGS, "metadata": []},
    {"model": MODEL, "max_tokens": 10**9, "messages": MSGS},
]


def test_malformed_bodies_get_anthropics_400(mock: ServerProcess) -> None:
    for body in MALFORMED:
        resp = _post(mock, body)
        assert resp.status_code == 400, (body if isinstance(body, dict) else body[:20], resp.text)  # type: ignore[attr-defined]
        err = resp.json()  # type: ignore[attr-defined]
        assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
        assert err["error"]["message"] and err["request_id"]
        assert resp.headers["request-id"] == err["request_id"]  # type: ignore[attr-defined]
    missing = _post(
        mock, {"model": MODEL, "max_tokens": 8, "messages": MSGS}, **{"anthropic-version": ""}
    )
    assert missing.status_code == 400  # type: ignore[attr-defined]
    assert missing.json()["error"]["message"] == "anthropic-version: header is required"  # type: ignore[attr-defined]
    no_key = _post(mock, {"model": MODEL, "max_tokens": 8, "messages": MSGS}, **{"x-api-key": ""})
    assert no_key.status_code == 401  # type: ignore[attr-defined]
    assert no_key.json()["error"]["type"] == "authentication_error"  # type: ignore[attr-defined]


def test_rate_limit_429_then_the_sdk_retries_after_retry_after(mock: ServerProcess) -> None:
    c = client(mock, "tight")
    c.messages.create(model=MODEL, max_tokens=1, messages=MSGS)  # takes the one request
    with pytest.raises(anthropic.RateLimitError) as rl:
        c.messages.create(model=MODEL, max_tokens=1, messages=MSGS)
    h = rl.value.response.headers
    assert rl.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert h["retry-after"] == "1"
    assert h["anthropic-ratelimit-requests-limit"] == "60"
    assert h["anthropic-ratelimit-requests-remaining"] == "0"
    assert h["anthropic-ratelimit-requests-reset"].endswith("Z")
    retrying = client(mock, "tight", max_retries=2)
    t0 = time.perf_counter()
    raw = retrying.messages.with_raw_response.create(model=MODEL, max_tokens=1, messages=MSGS)
    assert raw.retries_taken >= 1 and raw.parse().usage.output_tokens == 1
    assert time.perf_counter() - t0 >= 0.5  # it waited for the bucket, as retry-after said


def _hold_busy_slot(mock: ServerProcess, started: threading.Event) -> None:
    """An OpenAI-route stream of 60 tokens (~0.85 s at 14 ms a step) in the one slot."""
    body = {
        "model": "gpt-4o-mini",
        "messages": MSGS,
        "max_tokens": 60,
        "ignore_eos": True,
        "stream": True,
    }
    req = urllib.request.Request(
        f"{mock.url}/busy/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=20) as resp:
        resp.readline()
        started.set()
        resp.read()


def test_overloaded_529_then_the_sdk_retries(mock: ServerProcess) -> None:
    overloaded = getattr(anthropic, "OverloadedError", anthropic.InternalServerError)
    for retries in (0, 2):
        started = threading.Event()
        holder = threading.Thread(target=_hold_busy_slot, args=(mock, started), daemon=True)
        holder.start()
        assert started.wait(10)
        c = client(mock, "busy", max_retries=retries)
        if retries == 0:
            with pytest.raises(overloaded) as exc:
                c.messages.create(model=MODEL, max_tokens=1, messages=MSGS)
            assert exc.value.status_code == 529
            assert exc.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
            assert int(exc.value.response.headers["retry-after"]) >= 1
        else:
            raw = c.messages.with_raw_response.create(model=MODEL, max_tokens=1, messages=MSGS)
            assert raw.retries_taken >= 1 and raw.parse().stop_reason == "max_tokens"
        holder.join(20)


def _admin_down(mock: ServerProcess, region: str, mode: str | bool) -> None:
    resp = http_request(
        "PATCH", f"{mock.url}/admin/config", json_body={"regions": {region: {"down": mode}}}
    )
    assert resp.status_code == 200, resp.text


def test_overloaded_region_ends_streams_with_an_error_event_then_529s(
    mock: ServerProcess,
) -> None:
    c = client(mock, "storm")
    events = c.messages.create(
        model=MODEL,
        max_tokens=2000,
        messages=MSGS,
        stream=True,
        extra_body={"ignore_eos": True},  # 2,000 tokens at 14 ms: it runs for ~28 s
    )
    kinds = []
    try:
        with pytest.raises(anthropic.APIStatusError) as cut:
            for event in events:
                kinds.append(event.type)
                if len(kinds) == 5:
                    _admin_down(mock, "storm", "overloaded")
        assert cut.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
        assert kinds[:3] == ["message_start", "content_block_start", "content_block_delta"]
        assert "message_stop" not in kinds
        overloaded = getattr(anthropic, "OverloadedError", anthropic.InternalServerError)
        with pytest.raises(overloaded) as new:
            c.messages.create(model=MODEL, max_tokens=1, messages=MSGS)
        assert new.value.status_code == 529
    finally:
        _admin_down(mock, "storm", False)
    assert c.messages.create(model=MODEL, max_tokens=1, messages=MSGS).usage.output_tokens == 1
