"""The provider-API registry (loadkit/apis): every entry complete, every decoder reading the
odd but real answers a load test meets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from loadkit.apis.anthropic import AnthropicDecoder
from loadkit.apis.base import (
    JSON,
    NDJSON,
    SSE,
    TEXT,
    Decoder,
    Endpoint,
    HttpTemplate,
    MalformedFrame,
    PlannedCall,
    Usage,
    framing_of,
)
from loadkit.apis.http import TemplateDecoder, render, values_of
from loadkit.apis.openai import OpenAIDecoder
from loadkit.apis.registry import API_NAMES, APIS, api_of, build_request
from loadkit.apis.sse import SSEParser
from loadkit.cost import Price, cost_usd
from loadkit.traffic.attempt import Attempt, check_answer

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = HttpTemplate(path="/api/ask", body={"q": "{{question}}"}, text_path="answer")


def _call(**over: object) -> PlannedCall:
    base: dict[str, object] = {
        "kind": "chat",
        "region": "us",
        "workload": "chat",
        "model": "m",
        "messages": (
            {"role": "system", "content": "You help."},
            {"role": "user", "content": 'Say "hi"'},
        ),
        "max_tokens": 8,
    }
    return PlannedCall(**{**base, **over})  # type: ignore[arg-type]


def _ep(api: str) -> Endpoint:
    return Endpoint("e", "http://127.0.0.1:9/v1", "m", api=api, template=TEMPLATE)


# -- every entry has what the rest of loadkit needs ----------------------------------------


@pytest.mark.parametrize("name", API_NAMES)
def test_every_api_has_a_decoder_a_probe_a_path_a_mock_route_and_a_docs_row(name: str) -> None:
    api = api_of(name)
    ep = _ep(name)
    assert isinstance(api.decoder(ep, _call()), Decoder)
    probe = api.probe(ep)
    assert probe.max_tokens == 1 and not probe.stream
    req = build_request(ep, probe, {})
    assert req.method in ("POST", "PUT", "GET") and req.uri.startswith("/")
    assert set(api.framings) <= {SSE, NDJSON, TEXT, JSON}
    docs = (REPO / "docs" / "apis.md").read_text(encoding="utf-8")
    assert re.search(rf"^\| `{name}` \|", docs, flags=re.M), f"docs/apis.md has no row for {name}"
    mock_src = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "mocks").glob("*.py"))
    path = api.path(ep, "chat").split("?")[0]
    route = {"azure": "/openai/deployments/"}.get(name, path)
    assert route in mock_src, f"the mock serves no {route} route for {name}"


def test_unknown_api_is_named() -> None:
    with pytest.raises(ValueError, match="unknown api 'grpc'"):
        api_of("grpc")
    assert tuple(APIS) == API_NAMES


# -- requests: URL, auth, body --------------------------------------------------------------


def test_anthropic_request_has_its_own_auth_system_field_and_max_tokens() -> None:
    req = build_request(_ep("anthropic"), _call(max_tokens=None), {"x-team": "a"}, key="K")
    assert req.uri == "/v1/messages"
    assert req.headers["x-api-key"] == "K" and "Authorization" not in req.headers
    assert req.headers["anthropic-version"] == "2023-06-01"
    body = json.loads(req.body or b"")
    assert body["system"] == "You help."
    assert body["messages"] == [{"role": "user", "content": 'Say "hi"'}]
    assert body["max_tokens"] == 4096 and body["stream"] is True and body["model"] == "m"


def test_anthropic_marks_a_shared_prefix_for_caching_and_drops_openai_only_fields() -> None:
    call = _call(shared_prefix=True, extra_body={"stream_options": {}, "seed": 1, "top_k": 5})
    body = json.loads(build_request(_ep("anthropic"), call, {}).body or b"")
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "stream_options" not in body and "seed" not in body and body["top_k"] == 5


def test_a_scenario_credential_header_wins_over_the_api_key() -> None:
    req = build_request(_ep("anthropic"), _call(), {"Authorization": "Bearer T"}, key="K")
    assert "x-api-key" not in req.headers and req.headers["Authorization"] == "Bearer T"


def test_azure_path_key_and_version() -> None:
    ep = Endpoint("z", "https://r.openai.azure.com", "gpt-4o", api="azure", deployment="prod 1")
    req = build_request(ep, _call(), {}, key="K")
    assert req.uri == "/openai/deployments/prod%201/chat/completions?api-version=2024-10-21"
    assert req.headers["api-key"] == "K" and "Authorization" not in req.headers
    emb = build_request(ep, _call(kind="embeddings", input="x"), {}, key="K")
    assert emb.uri.startswith("/openai/deployments/prod%201/embeddings?")


def test_openai_keeps_the_base_path_and_sends_a_bearer_key() -> None:
    ep = Endpoint("o", "http://gw:4000/openai/v1", "", api="openai")
    req = build_request(ep, _call(), {}, key="K")
    assert req.origin == "http://gw:4000" and req.uri == "/openai/v1/chat/completions"
    assert req.headers["Authorization"] == "Bearer K"
    assert json.loads(req.body or b"")["model"] == "m"  # the call's own model


def test_a_named_endpoint_model_replaces_the_call_model_except_for_embeddings() -> None:
    ep = Endpoint("f", "http://h", "claude-x", api="anthropic")
    assert json.loads(build_request(ep, _call(), {}).body or b"")["model"] == "claude-x"
    oe = Endpoint("f", "http://h", "chat-model")
    emb = build_request(oe, _call(kind="embeddings", input="q", model="emb-3"), {})
    assert json.loads(emb.body or b"")["model"] == "emb-3"


def test_http_template_placeholders_whole_values_and_escaped_text() -> None:
    tpl = {
        "q": "{{question}}",
        "history": "{{messages}}",
        "n": "{{max_tokens}}",
        "note": 'asked by {{session_id}} in turn {{turn}}: "{{question}}"',
        "fixed": [1, True, None],
    }
    out = render(tpl, values_of(_call(session_id="s-1", turn=2)))
    assert out["q"] == 'Say "hi"' and out["n"] == 8
    assert out["history"][1] == {"role": "user", "content": 'Say "hi"'}
    assert out["note"] == 'asked by s-1 in turn 2: "Say "hi""'
    assert json.loads(json.dumps(out))["note"] == out["note"]  # escaped by JSON, not by hand
    assert out["fixed"] == [1, True, None]


# -- decoders -------------------------------------------------------------------------------


def _feed(decoder: Decoder, raw: bytes) -> list:
    parser = SSEParser()
    frames = [decoder.frame(d, e) for e, d in parser.feed_events(raw)]
    assert parser.junk is None
    return frames


ANTHROPIC_STREAM = b"".join(
    f"event: {name}\ndata: {json.dumps(obj)}\n\n".encode()
    for name, obj in [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "model": "claude-x",
                    "usage": {
                        "input_tokens": 10,
                        "cache_read_input_tokens": 100,
                        "cache_creation_input_tokens": 7,
                        "output_tokens": 1,
                    },
                },
            },
        ),
        ("content_block_start", {"type": "content_block_start", "index": 0}),
        ("ping", {"type": "ping"}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "h"}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "signature_delta", "signature": "s"}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}},
        ),
        ("future_event", {"type": "future_event"}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "max_tokens"},
                "usage": {"output_tokens": 2},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
)


def test_anthropic_stream_content_usage_finish_and_end() -> None:
    frames = _feed(AnthropicDecoder(), ANTHROPIC_STREAM)
    assert [f.text for f in frames if f.content] == ["h", "Hi"]  # thinking counts; signature not
    assert frames[0].model == "claude-x"
    last_usage = [f.usage for f in frames if f.usage is not None][-1]
    # input excludes cache reads and writes in Anthropic's usage; the record's prompt is all
    assert last_usage == Usage(prompt=117, completion=2, cached=100, cache_write=7)
    assert [f.finish for f in frames if f.finish] == ["length"]
    assert frames[-1].end and not any(f.end for f in frames[:-1])


def test_anthropic_overloaded_error_event_and_whole_message() -> None:
    d = AnthropicDecoder()
    err = d.frame(b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
    assert err.error_outcome == "overloaded" and "Overloaded" in (err.error or "")
    other = d.frame(b'{"type":"error","error":{"type":"api_error","message":"x"}}')
    assert other.error_outcome == "stream_error"
    whole = AnthropicDecoder().whole(
        {
            "type": "message",
            "model": "claude-x",
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 1},
        }
    )
    assert whole.text == "ok" and whole.finish == "stop" and whole.usage == Usage(3, 1, 0, 0)
    with pytest.raises(MalformedFrame):
        AnthropicDecoder().frame(b"<html>")


def test_anthropic_classifies_529_as_overloaded_and_429_as_rate_limited() -> None:
    api = api_of("anthropic")
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    assert api.classify(529, body, {}).outcome == "overloaded"
    assert api.classify(429, b"{}", {}).outcome == "rate_limited"
    assert api.classify(401, b"{}", {}).outcome == "http_error"


def test_azure_content_filter_is_its_own_outcome_and_filter_chunks_are_no_content() -> None:
    body = b'{"error":{"code":"content_filter","message":"filtered"}}'
    assert api_of("azure").classify(400, body, {}).outcome == "content_filter"
    assert api_of("azure").classify(400, b'{"error":{"code":"x"}}', {}).outcome == "http_error"
    chunk = {"choices": [], "prompt_filter_results": [{"prompt_index": 0}]}
    assert not OpenAIDecoder().frame(json.dumps(chunk).encode()).content
    stopped = {"choices": [{"index": 0, "delta": {}, "finish_reason": "content_filter"}]}
    a = Attempt(pieces=["partial"])
    a.finish_reason = OpenAIDecoder().frame(json.dumps(stopped).encode()).finish or ""
    check_answer(_call(), a)
    assert a.outcome == "content_filter"


def test_an_answer_without_content_is_empty_not_ok() -> None:
    d = OpenAIDecoder()
    assert d.frame(b"[DONE]").end
    a = Attempt()
    check_answer(_call(), a)
    assert a.outcome == "empty" and "no content" in a.error
    asked_none = Attempt()
    check_answer(_call(max_tokens=0), asked_none)
    assert asked_none.outcome == "ok"


def test_sse_parser_names_events_and_flags_what_is_not_sse() -> None:
    p = SSEParser()
    # a block is complete lines without the last ending (one socket read), as the client reads
    assert p.feed_events(b"event: token\ndata: a\n\n: comment\nid: 3\ndata: b") == [("token", b"a")]
    assert p.feed_events(b"") == [("", b"b")]
    assert p.junk is None
    html = SSEParser()
    html.feed_lines(b'data: {"x":1}\n\n<html><body>Service Unavailable</body></html>\n')
    assert html.junk == b"<html><body>Service Unavailable</body></html>"


def test_framing_comes_from_the_content_type() -> None:
    assert framing_of("text/event-stream; charset=utf-8") == SSE
    assert framing_of("application/json") == JSON
    assert framing_of("application/x-ndjson") == NDJSON
    assert framing_of("text/plain; charset=utf-8") == TEXT
    assert framing_of("text/html") is None and framing_of(None) is None


def test_template_decoder_reads_each_framing() -> None:
    text = TemplateDecoder(HttpTemplate(response=TEXT))
    assert text.ends_with_body and text.frame(b"Hel").text == "Hel"
    sse = TemplateDecoder(
        HttpTemplate(
            response=SSE,
            event="token",
            text_path="text",
            done_event="done",
            usage_completion_path="usage.output",
        )
    )
    assert not sse.ends_with_body
    assert sse.frame(b'{"text":"a"}', "token").text == "a"
    assert not sse.frame(b'{"step":"retrieve"}', "status").content
    done = sse.frame(b'{"usage":{"output":5}}', "done")
    assert done.end and done.usage == Usage(0, 5) and not done.content
    nd = TemplateDecoder(HttpTemplate(response=NDJSON, text_path="choices.0.text"))
    assert nd.frame(b'{"choices":[{"text":"z"}]}').text == "z"
    with pytest.raises(MalformedFrame, match="not JSON"):
        nd.frame(b"oops")
    whole = TemplateDecoder(
        HttpTemplate(text_path="answer", usage_prompt_path="u.in", finish_path="why")
    ).whole({"answer": "yes", "u": {"in": 9}, "why": "stop"})
    assert whole.text == "yes" and whole.usage == Usage(9, 0) and whole.finish == "stop"


def test_cost_prices_cache_writes_apart() -> None:
    p = Price(
        "claude-x",
        input_per_1m=3.0,
        output_per_1m=15.0,
        cached_input_per_1m=0.3,
        cache_write_per_1m=3.75,
    )
    usd = cost_usd(
        p, prompt_tokens=1_117, cached_tokens=100, completion_tokens=2, cache_write_tokens=1_000
    )
    expected = (17 * 3.0 + 100 * 0.3 + 1_000 * 3.75 + 2 * 15.0) / 1e6
    assert usd == pytest.approx(expected, rel=1e-12)
    assert cost_usd(p, 1_117, 100, 2) == pytest.approx((1_017 * 3.0 + 30 + 30) / 1e6)


def test_overloaded_is_retried_and_a_reason_to_fail_over() -> None:
    from loadkit.scenario.model import Retries
    from loadkit.traffic import resilience as r

    policy = Retries()
    assert r.is_retryable("overloaded", 529, {}, policy)
    assert r.is_retryable("overloaded", 529, {"x-should-retry": "false"}, policy) is False
    assert not r.is_retryable("content_filter", 400, {}, policy)
    assert not r.is_retryable("empty", 200, {}, policy)
    assert r.should_fail_over("overloaded", 529, retries_left=0, has_next=True)


def test_embedding_calls_pay_the_embedding_models_price_not_the_chat_models() -> None:
    from loadkit.cost import lookup_price
    from loadkit.scenario.model import Pricing
    from loadkit.traffic.context import RunContext

    class _Sc:
        endpoints: dict = {}  # noqa: RUF012
        regions = ()
        pricing = Pricing(model="gpt-4o", price=lookup_price("gpt-4o"), regional_uplift={"eu": 1.1})

        def route_price(self, route: str) -> None:
            return None

    ctx = RunContext(scenario=_Sc(), endpoints={}, headers={}, run_id="r", seed=0, rtt_ms={})
    emb = lookup_price("text-embedding-3-small")
    assert emb is not None
    assert ctx.price_for("us", "text-embedding-3-small") == emb
    assert ctx.price_for("eu", "text-embedding-3-small").input_per_1m == pytest.approx(
        emb.input_per_1m * 1.1
    )
    assert ctx.price_for("us", "gpt-4o") == lookup_price("gpt-4o")
