"""The mock provider driven by the official `openai` SDK in a real subprocess server."""

from __future__ import annotations

import numpy as np
import openai
import pytest

from loadkit.serving.launch import ServerProcess
from loadkit.tokens import estimate_tokens
from tests.conftest import FAST_MOCK, StartMock

MSGS = [{"role": "user", "content": "Tell me about load testing of LLM services."}]


def client(server: ServerProcess, **kw: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", **kw)  # type: ignore[arg-type]


def test_streaming_with_usage_follows_openai_framing(mock_server: ServerProcess) -> None:
    stream = client(mock_server).chat.completions.create(
        model="gpt-4o-mini",
        messages=MSGS,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and next(iter(ids)).startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks[1:] if c.choices]
    text = "".join(x for x in content if x)
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["length"]  # max_tokens 12 is below any natural draw at median 180
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 12 == estimate_tokens(text)
    assert len([x for x in content if x]) == 12  # one content delta per token
    assert last.usage.prompt_tokens == estimate_tokens(MSGS[0]["content"])
    assert last.usage.total_tokens == last.usage.prompt_tokens + 12
    assert last.usage.prompt_tokens_details.cached_tokens == 0
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_usage_has_no_usage_chunk(mock_server: ServerProcess) -> None:
    chunks = list(
        client(mock_server).chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, max_completion_tokens=3, stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert estimate_tokens(text) == 3


def test_stream_headers_carry_ground_truth(mock_server: ServerProcess) -> None:
    raw = client(mock_server).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSGS, max_tokens=4, stream=True
    )
    h = raw.headers
    for name in (
        "x-request-id",
        "openai-processing-ms",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ):
        assert h.get(name), name
    assert h["x-mock-region"] == "default"
    ttft = float(h["x-mock-ttft-ms"])
    # hosted-api prefill overhead 380 ms x latency_scale 0.05 = 19 ms (no jitter), measured
    # by the mock from arrival to first token, so its event loop's wake-up is in it: under
    # 4x the model on a busy machine; the unscaled 380 ms (a lost latency_scale) fails
    assert 18.0 <= ttft < 80.0, ttft
    assert float(h["x-mock-queue-ms"]) >= 0.0
    # headers are sent with the first token, so processing time covers the scheduled TTFT
    assert float(h["openai-processing-ms"]) >= int(ttft) - 1
    list(raw.parse())


def test_non_streaming_response_and_headers(mock_server: ServerProcess) -> None:
    raw = client(mock_server).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MSGS, max_tokens=5
    )
    resp = raw.parse()
    assert resp.object == "chat.completion" and resp.model == "gpt-4o"
    msg = resp.choices[0].message
    assert msg.role == "assistant"
    assert estimate_tokens(msg.content or "") == resp.usage.completion_tokens == 5
    assert all(len(w) == 3 for w in (msg.content or "").split())
    assert resp.choices[0].finish_reason == "length"
    assert raw.headers["x-request-id"].startswith("req_")
    assert int(raw.headers["x-ratelimit-remaining-requests"]) < int(
        raw.headers["x-ratelimit-limit-requests"]
    )


def test_natural_stop_when_max_tokens_is_large(start_mock: StartMock) -> None:
    server = start_mock({**FAST_MOCK, "output_tokens": {"dist": "fixed", "value": 7}})
    resp = client(server).chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, max_tokens=100
    )
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens == 7


def test_prefix_cache_reports_cached_tokens(mock_server: ServerProcess) -> None:
    system = "You are a careful assistant. " * 200  # ~1450 tokens, above the 1024 minimum
    c = client(mock_server)
    first = c.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "one"}],
        max_tokens=1,
    )
    second = c.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "system", "content": system}, {"role": "user", "content": "two"}],
        max_tokens=1,
    )
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= 1024 and cached % 128 == 0
    assert cached <= second.usage.prompt_tokens


def test_legacy_completions_stream_and_not(mock_server: ServerProcess) -> None:
    c = client(mock_server)
    resp = c.completions.create(model="gpt-4o-mini", prompt="Once upon a time", max_tokens=6)
    assert resp.object == "text_completion"
    assert estimate_tokens(resp.choices[0].text) == 6 == resp.usage.completion_tokens
    chunks = list(
        c.completions.create(
            model="gpt-4o-mini",
            prompt="Once upon a time",
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert estimate_tokens(text) == 6
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6


def test_embeddings_are_deterministic_unit_vectors(mock_server: ServerProcess) -> None:
    c = client(mock_server)
    a = c.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
    b = c.embeddings.create(
        model="text-embedding-3-small", input=["hello"], encoding_format="float"
    )
    assert len(a.data) == 2 and len(a.data[0].embedding) == 1536
    v0 = np.array(a.data[0].embedding)
    assert np.allclose(v0, np.array(b.data[0].embedding), atol=1e-6)  # base64 == float
    assert abs(np.linalg.norm(v0) - 1.0) < 1e-4
    assert not np.allclose(v0, np.array(a.data[1].embedding))
    assert a.usage.prompt_tokens == estimate_tokens("hello") + estimate_tokens("world")
    short = c.embeddings.create(model="text-embedding-3-small", input="hello", dimensions=256)
    assert len(short.data[0].embedding) == 256


def test_models_list_and_retrieve(mock_server: ServerProcess) -> None:
    c = client(mock_server)
    ids = [m.id for m in c.models.list()]
    assert ids == ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
    assert c.models.retrieve("gpt-4o").id == "gpt-4o"


def test_vllm_profile_serves_llama(start_mock: StartMock) -> None:
    server = start_mock(None, "--profile", "vllm-h100")
    c = client(server)
    assert "meta-llama/Llama-3.1-8B-Instruct" in [m.id for m in c.models.list()]
    raw = c.chat.completions.with_raw_response.create(
        model="meta-llama/Llama-3.1-8B-Instruct", messages=MSGS, max_tokens=3
    )
    assert 20.0 <= float(raw.headers["x-mock-ttft-ms"]) < 400.0
    assert "x-ratelimit-limit-requests" not in raw.headers  # vLLM has no rate limits
    assert raw.parse().usage.completion_tokens == 3


@pytest.mark.parametrize("seed", [0, 7])
def test_same_seed_same_draws_regardless_of_order(start_mock: StartMock, seed: int) -> None:
    cfg = {**FAST_MOCK, "output_tokens": {"dist": "lognormal", "median": 20, "p90": 60}}
    a = client(start_mock(cfg, "--seed", str(seed)))
    b = client(start_mock(cfg, "--seed", str(seed)))

    def ask(c: openai.OpenAI, text: str) -> str:
        r = c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
        )
        return r.choices[0].message.content or ""

    first_a = [ask(a, "x"), ask(a, "y"), ask(a, "x")]
    first_b = [ask(b, "y"), ask(b, "x"), ask(b, "x")]
    assert first_a[0] == first_b[1] and first_a[2] == first_b[2] and first_a[1] == first_b[0]
    assert first_a[0] != first_a[2]  # a repeated request is a new draw


def test_different_seed_different_draws(start_mock: StartMock) -> None:
    cfg = {**FAST_MOCK, "output_tokens": {"dist": "lognormal", "median": 20, "p90": 60}}
    texts = []
    for seed in ("1", "2"):
        c = client(start_mock(cfg, "--seed", seed))
        r = c.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        texts.append(r.choices[0].message.content)
    assert texts[0] != texts[1]


def test_fast_usage_encoding_matches_json() -> None:
    from mocks.openai_api import _dumps, _usage, _usage_json

    for args in ((3, 4, 0), (12_000, 1, 11_904)):
        usage = _usage(*args)
        assert _usage_json(usage) == _dumps(usage)
