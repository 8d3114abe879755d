"""Azure OpenAI's deployment routes on the mock, driven by `openai.AzureOpenAI`, unchanged.

One mock per module (a subprocess on loopback) with two regions: `main` and `tight` (one
request per second per key, for 429s).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import openai
import pytest

from loadkit.serving.launch import ServerProcess
from loadkit.tokens import estimate_tokens
from mocks.azure_api import OUTPUT_FILTER_MARKER, PROMPT_FILTER_MARKER
from tests.conftest import FAST_MOCK, _start, http_request

KEY = "azure-mock-key-0001"
VERSION = "2024-10-21"
CHAT = "gpt-4o-mini"
EMB = "text-embedding-3-small"
MSGS = [{"role": "user", "content": "Say hello."}]
CONFIG = {
    **FAST_MOCK,
    "require_api_key": True,
    "api_keys": [KEY],
    "regions": {
        "main": {},
        "tight": {"rate_limits": {"rpm": 60, "tpm": None, "burst_seconds": 1}},
    },
}


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = _start(tmp_path_factory.mktemp("mock-azure"), CONFIG)
    try:
        yield server
    finally:
        server.stop()


def azure(mock: ServerProcess, region: str = "main", **kw: object) -> openai.AzureOpenAI:
    opts: dict[str, object] = {
        "api_key": KEY,
        "api_version": VERSION,
        "max_retries": 0,
        "timeout": 20.0,
    }
    opts.update(kw)
    return openai.AzureOpenAI(azure_endpoint=f"{mock.url}/{region}", **opts)  # type: ignore[arg-type]


def test_stream_has_the_prompt_filter_chunk_then_filtered_choices(mock: ServerProcess) -> None:
    chunks = list(
        azure(mock).chat.completions.create(
            model=CHAT,
            messages=MSGS,  # type: ignore[arg-type]
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    first = chunks[0]
    assert first.choices == []
    assert first.model_extra is not None
    assert first.model_extra["prompt_filter_results"][0]["prompt_index"] == 0
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    text = "".join(c.choices[0].delta.content or "" for c in content)
    assert estimate_tokens(text) == 5
    filt = content[0].choices[0].model_extra["content_filter_results"]  # type: ignore[index]
    assert filt["hate"] == {"filtered": False, "severity": "safe"}
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_whole_answer_headers_and_filter_results(mock: ServerProcess) -> None:
    raw = azure(mock).chat.completions.with_raw_response.create(
        model=CHAT,
        messages=MSGS,  # type: ignore[arg-type]
        max_tokens=4,
    )
    h = raw.headers
    assert h["x-ms-region"] == "main"
    assert len(h["apim-request-id"]) == 36
    assert int(h["x-ratelimit-remaining-requests"]) > 0
    assert int(h["x-ratelimit-remaining-tokens"]) > 0
    assert float(h["x-mock-ttft-ms"]) >= 0
    resp = raw.parse()
    assert resp.choices[0].finish_reason == "length"
    assert estimate_tokens(resp.choices[0].message.content or "") == 4
    assert resp.model_extra is not None and resp.model_extra["prompt_filter_results"]
    assert resp.choices[0].model_extra["content_filter_results"]["violence"]["filtered"] is False  # type: ignore[index]


def test_embeddings_on_a_deployment(mock: ServerProcess) -> None:
    out = azure(mock).embeddings.create(model=EMB, input=["alpha", "beta"])
    assert [len(d.embedding) for d in out.data] == [1536, 1536]
    assert out.usage.prompt_tokens == estimate_tokens("alpha") + estimate_tokens("beta")


def test_bearer_token_and_region_prefix_free_endpoint(mock: ServerProcess) -> None:
    c = openai.AzureOpenAI(
        azure_endpoint=mock.url,  # the front listener's first region
        azure_ad_token=KEY,
        api_version="2025-01-01-preview",
        max_retries=0,
    )
    resp = c.chat.completions.create(model=CHAT, messages=MSGS, max_tokens=2)  # type: ignore[arg-type]
    assert resp.choices[0].message.content


def test_api_version_is_checked_as_azure_does(mock: ServerProcess) -> None:
    url = f"{mock.url}/main/openai/deployments/{CHAT}/chat/completions"
    body = {"messages": MSGS, "max_tokens": 2}
    missing = http_request("POST", url, json_body=body, headers={"api-key": KEY})
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "404", "message": "Resource not found"}}
    for bad in ("2099-01-01", "2024-02-30", "latest", "2021-01-01"):
        with pytest.raises(openai.BadRequestError) as exc:
            azure(mock, api_version=bad).chat.completions.create(
                model=CHAT,
                messages=MSGS,  # type: ignore[arg-type]
                max_tokens=2,
            )
        assert exc.value.body == {"code": "BadRequest", "message": "API version not supported"}


def test_gateway_errors_in_azures_shape(mock: ServerProcess) -> None:
    with pytest.raises(openai.AuthenticationError) as auth:
        azure(mock, api_key="wrong-key").chat.completions.create(
            model=CHAT,
            messages=MSGS,  # type: ignore[arg-type]
            max_tokens=2,
        )
    assert auth.value.body["code"] == "401"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError) as nf:
        azure(mock).chat.completions.create(model="no-such-deployment", messages=MSGS, max_tokens=2)  # type: ignore[arg-type]
    assert nf.value.body["code"] == "DeploymentNotFound"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as op:
        azure(mock).chat.completions.create(model=EMB, messages=MSGS, max_tokens=2)  # type: ignore[arg-type]
    assert op.value.body["code"] == "OperationNotSupported"  # type: ignore[index]


def test_content_filter_markers(mock: ServerProcess) -> None:
    c = azure(mock)
    refused = [{"role": "user", "content": f"tell me {PROMPT_FILTER_MARKER}"}]
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model=CHAT, messages=refused, max_tokens=8)  # type: ignore[arg-type]
    assert exc.value.code == "content_filter" and exc.value.param == "prompt"
    inner = exc.value.body["innererror"]  # type: ignore[index]
    assert inner["code"] == "ResponsibleAIPolicyViolation"
    cut = [{"role": "user", "content": f"tell me {OUTPUT_FILTER_MARKER}"}]
    whole = c.chat.completions.create(model=CHAT, messages=cut, max_tokens=8)  # type: ignore[arg-type]
    assert whole.choices[0].finish_reason == "content_filter"
    assert estimate_tokens(whole.choices[0].message.content or "") == 4
    chunks = list(c.chat.completions.create(model=CHAT, messages=cut, max_tokens=8, stream=True))  # type: ignore[arg-type]
    last = [ch for ch in chunks if ch.choices][-1].choices[0]
    assert last.finish_reason == "content_filter"
    assert last.model_extra["content_filter_results"]["violence"]["filtered"] is True  # type: ignore[index]


def test_rate_limit_429_in_azures_shape_and_the_sdk_retries(mock: ServerProcess) -> None:
    c = azure(mock, "tight")
    c.chat.completions.create(model=CHAT, messages=MSGS, max_tokens=1)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as rl:
        c.chat.completions.create(model=CHAT, messages=MSGS, max_tokens=1)  # type: ignore[arg-type]
    assert rl.value.body["code"] == "429"  # type: ignore[index]
    assert "ChatCompletions_Create" in rl.value.body["message"]  # type: ignore[index]
    assert rl.value.response.headers["retry-after"] == "1"
    assert rl.value.response.headers["x-ratelimit-remaining-requests"] == "0"
    t0 = time.perf_counter()
    raw = azure(mock, "tight", max_retries=2).chat.completions.with_raw_response.create(
        model=CHAT,
        messages=MSGS,  # type: ignore[arg-type]
        max_tokens=1,
    )
    assert raw.retries_taken >= 1 and raw.parse().choices[0].message.content
    assert time.perf_counter() - t0 >= 0.5


MALFORMED: list[bytes] = [
    b"",
    b"{",
    b"[]",
    b"\xff",
    b"[" * 50_000,
    json.dumps({"messages": "hi"}).encode(),
    json.dumps({"messages": []}).encode(),
    json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(),
    json.dumps({"messages": MSGS, "max_tokens": "9"}).encode(),
    json.dumps({"messages": MSGS, "stream": "yes"}).encode(),
    json.dumps({"messages": MSGS, "max_tokens": 10**9}).encode(),
]


def test_malformed_bodies_get_a_400(mock: ServerProcess) -> None:
    base = f"{mock.url}/main/openai/deployments"
    q = f"?api-version={VERSION}"
    for body in MALFORMED:
        resp = http_request(
            "POST", f"{base}/{CHAT}/chat/completions{q}", content=body, headers={"api-key": KEY}
        )
        assert resp.status_code == 400, (body[:30], resp.text)
        assert resp.json()["error"]["message"]
        assert resp.headers["apim-request-id"]
    emb = http_request(
        "POST", f"{base}/{EMB}/embeddings{q}", content=b'{"input": 5}', headers={"api-key": KEY}
    )
    assert emb.status_code == 400
