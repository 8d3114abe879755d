"""Every fault kind through the real proxy in front of the real mock, seen by the official SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from loadkit.chaos.control_client import ChaosControl, ChaosControlError, ProxyProcess
from loadkit.serving.launch import ServerProcess
from tests.chaos_support import mock_and_proxy
from tests.conftest import http_request

MSGS = [{"role": "user", "content": "tell me a story"}]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ProxyProcess]]:
    with mock_and_proxy(tmp_path_factory.mktemp("chaos")) as pair:
        yield pair


@pytest.fixture
def proxy(stack: tuple[ServerProcess, ProxyProcess]) -> Iterator[ProxyProcess]:
    stack[1].control.reset()
    yield stack[1]
    stack[1].control.reset()


def _client(url: str, retries: int = 0, timeout: float = 2.0) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=url + "/v1", api_key="sk-test", max_retries=retries, timeout=timeout
    )


def _stream(client: openai.OpenAI, header: str | None = None, n: int = 6) -> list[Any]:
    """Chunks received before the stream ended; raises what the SDK raises."""
    got: list[Any] = []
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSGS,
        max_tokens=n,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"x-loadkit-chaos": header} if header else None,
    )
    for chunk in stream:
        got.append(chunk)
    return got


def _texts(chunks: list[Any]) -> list[str]:
    return [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]


def _fault_header(client: openai.OpenAI, header: str, stream: bool = True) -> tuple[str, int]:
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MSGS,
        max_tokens=3,
        stream=stream,
        extra_headers={"x-loadkit-chaos": header},
    )
    return raw.headers.get("x-loadkit-fault", ""), raw.status_code


def test_untouched_traffic_passes_whole_and_untagged(proxy: ProxyProcess) -> None:
    chunks = _stream(_client(proxy.url), n=6)
    assert len(_texts(chunks)) == 6
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    raw = _client(proxy.url).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSGS, max_tokens=4
    )
    assert raw.headers.get("x-loadkit-fault") is None
    assert raw.headers.get("x-mock-region") == "na"  # upstream headers preserved
    assert raw.parse().usage.completion_tokens == 4
    emb = _client(proxy.url).embeddings.create(model="text-embedding-3-small", input="abc")
    assert len(emb.data[0].embedding) == 1536


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (502, openai.InternalServerError),
        (503, openai.InternalServerError),
        (504, openai.InternalServerError),
        (529, openai.InternalServerError),
    ],
)
def test_http_errors_raise_the_sdk_exception_for_their_status(
    proxy: ProxyProcess, status: int, exc: type[Exception]
) -> None:
    with pytest.raises(exc) as info:
        _stream(_client(proxy.url), f"status={status};id=e{status}")
    err = info.value
    assert isinstance(err, openai.APIStatusError) and err.status_code == status
    assert err.response.headers["x-loadkit-fault"] == f"e{status}"
    assert isinstance(err.body, dict) and "message" in err.body


def test_a_429_reads_like_openais(proxy: ProxyProcess) -> None:
    resp = http_request(
        "POST",
        proxy.url + "/v1/chat/completions",
        json_body={"model": "gpt-4o-mini", "messages": MSGS},
        headers={"x-loadkit-chaos": "status=429;retry_after_ms=2500"},
    )
    assert resp.status_code == 429
    h = resp.headers
    assert h["retry-after"] == "3" and h["retry-after-ms"] == "2500"
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert h["x-ratelimit-reset-requests"] == "2.5s"
    err = resp.json()["error"]
    assert err["code"] == "rate_limit_exceeded" and "gpt-4o-mini" in err["message"]


def test_latency_delays_the_first_byte_and_tags(proxy: ProxyProcess) -> None:
    client = _client(proxy.url)
    t0 = time.perf_counter()
    chunks = _stream(client, "kind=latency;fixed_ms=400;id=slow")
    took = time.perf_counter() - t0
    assert len(_texts(chunks)) == 6
    assert took >= 0.4
    assert _fault_header(client, "kind=latency;fixed_ms=1;id=slow") == ("slow", 200)


def test_connection_faults_are_connection_errors(proxy: ProxyProcess) -> None:
    client = _client(proxy.url)
    for header in ("kind=refuse", "kind=reset"):
        with pytest.raises(openai.APIConnectionError) as info:
            _stream(client, header)
        assert not isinstance(info.value, openai.APITimeoutError)
    t0 = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        _stream(_client(proxy.url, timeout=0.8), "kind=hang")
    assert time.perf_counter() - t0 >= 0.75


def test_stall_keeps_the_connection_open_and_silent(proxy: ProxyProcess) -> None:
    got: list[Any] = []
    client = _client(proxy.url, timeout=0.8)
    with pytest.raises(openai.APITimeoutError):
        for chunk in client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MSGS,
            max_tokens=20,
            stream=True,
            extra_headers={"x-loadkit-chaos": "stall_after_tokens=3"},
        ):
            got.append(chunk)
    assert len(_texts(got)) == 3
    with pytest.raises(openai.APITimeoutError):
        _stream(client, "kind=stall;after_ms=60", n=50)


def test_cut_ends_cleanly_without_done_or_finish(proxy: ProxyProcess) -> None:
    chunks = _stream(_client(proxy.url), "cut_after_tokens=4", n=10)
    assert len(_texts(chunks)) == 4
    assert all(c.choices[0].finish_reason is None for c in chunks if c.choices)
    assert all(c.usage is None for c in chunks)
    raw = http_request(
        "POST",
        proxy.url + "/v1/chat/completions",
        json_body={"model": "gpt-4o-mini", "messages": MSGS, "stream": True, "max_tokens": 10},
        headers={"x-loadkit-chaos": "cut_after_tokens=4"},
    )
    assert raw.status_code == 200 and b"[DONE]" not in raw.content
    assert raw.content.count(b'"content":') == 5  # role chunk + 4 tokens


def test_reset_mid_stream_is_a_connection_error_after_content(proxy: ProxyProcess) -> None:
    got: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in _client(proxy.url).chat.completions.create(
            model="gpt-4o-mini",
            messages=MSGS,
            max_tokens=10,
            stream=True,
            extra_headers={"x-loadkit-chaos": "reset_after_tokens=2"},
        ):
            got.append(chunk)
    assert len(_texts(got)) == 2


def test_error_frame_raises_api_error_mid_stream(proxy: ProxyProcess) -> None:
    with pytest.raises(openai.APIError) as info:
        _stream(_client(proxy.url), "kind=error_frame;after_tokens=2;id=frame")
    assert not isinstance(info.value, openai.APIStatusError)
    assert isinstance(info.value.body, dict) and info.value.body["loadkit_fault"] == "frame"


def test_malformed_chunk_breaks_the_sdks_json_parsing(proxy: ProxyProcess) -> None:
    with pytest.raises(json.JSONDecodeError):
        _stream(_client(proxy.url), "kind=malformed_chunk;after_tokens=2")


def test_drop_usage_removes_only_the_usage_chunk(proxy: ProxyProcess) -> None:
    chunks = _stream(_client(proxy.url), "kind=drop_usage", n=5)
    assert len(_texts(chunks)) == 5
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_duplicate_chunk_repeats_one_token(proxy: ProxyProcess) -> None:
    plain = _texts(_stream(_client(proxy.url), n=6))
    dup = _texts(_stream(_client(proxy.url), "kind=duplicate_chunk;after_tokens=2", n=6))
    assert len(dup) == 7 and dup[2] == dup[3]
    assert len(plain) == 6


def _gaps(client: openai.OpenAI, header: str | None, n: int = 12) -> float:
    stamps = []
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MSGS,
        max_tokens=n,
        stream=True,
        extra_headers={"x-loadkit-chaos": header} if header else None,
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            stamps.append(time.perf_counter())
    assert len(stamps) == n
    return (stamps[-1] - stamps[0]) / (n - 1)


def test_slow_tokens_stretch_inter_token_gaps(proxy: ProxyProcess) -> None:
    client = _client(proxy.url, timeout=10)
    base = _gaps(client, None)
    slow = _gaps(client, "kind=slow_tokens;factor=4")
    # mock steps are 10 ms; x4 -> 40 ms. Wide margins for a busy 2-core machine.
    assert slow / base > 2.5, (base, slow)


def test_brownout_errors_and_latency(proxy: ProxyProcess) -> None:
    client = _client(proxy.url)
    with pytest.raises(openai.InternalServerError):
        _stream(client, "kind=brownout;error_rate=1;status=503")
    t0 = time.perf_counter()
    tag, status = _fault_header(client, "kind=brownout;error_rate=0;added_latency_ms=300;id=b")
    assert (tag, status) == ("b", 200) and time.perf_counter() - t0 >= 0.3


def test_first_n_then_succeed_across_sdk_retries(proxy: ProxyProcess) -> None:
    client = _client(proxy.url, retries=2)
    header = "status=503;retry_after_ms=20;first=2;id=flaky"
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSGS, max_tokens=3, extra_headers={"x-loadkit-chaos": header}
    )
    assert raw.status_code == 200 and raw.retries_taken == 2
    # a control-API fault with max_hits: the first 3 matching requests fail, then none
    proxy.control.put(
        {"id": "three", "kind": "http_error", "params": {"status": 500}, "max_hits": 3}
    )
    outcomes = []
    for _ in range(5):
        try:
            _stream(_client(proxy.url), n=2)
            outcomes.append("ok")
        except openai.InternalServerError:
            outcomes.append("500")
    assert outcomes == ["500", "500", "500", "ok", "ok"]


def test_a_bad_chaos_header_is_a_400_naming_the_problem(proxy: ProxyProcess) -> None:
    for header, word in (("kind=nope", "kind"), ("status=418", "status"), ("junk", "key=value")):
        resp = http_request(
            "POST",
            proxy.url + "/v1/chat/completions",
            json_body={"model": "gpt-4o-mini", "messages": MSGS},
            headers={"x-loadkit-chaos": header},
        )
        assert resp.status_code == 400 and word in resp.json()["error"]["message"]


def test_region_outage_refuses_that_regions_listener_only(proxy: ProxyProcess) -> None:
    na, eu = proxy.region_urls["na"], proxy.region_urls["eu"]
    assert len(_texts(_stream(_client(eu), n=2))) == 2
    proxy.control.put({"id": "eu-down", "kind": "region_outage", "where": {"region": "eu"}})
    with pytest.raises(openai.APIConnectionError):
        _stream(_client(eu), n=2)
    assert len(_texts(_stream(_client(na), n=2))) == 2
    # the front listener with the region header is cut off too
    with pytest.raises(openai.APIConnectionError):
        _client(proxy.url).chat.completions.create(
            model="gpt-4o-mini",
            messages=MSGS,
            max_tokens=2,
            extra_headers={"x-loadkit-region": "eu"},
        )
    status = proxy.control.status()
    assert status["regions"]["eu"]["down"] and not status["regions"]["na"]["down"]
    assert proxy.control.remove("eu-down")
    assert len(_texts(_stream(_client(eu), n=2))) == 2  # back on the same port


def test_region_outage_cuts_streams_in_flight(proxy: ProxyProcess) -> None:
    import threading

    eu = proxy.region_urls["eu"]
    box: list[Any] = []

    def consume() -> None:
        got: list[Any] = []
        try:
            for chunk in _client(eu, timeout=5).chat.completions.create(
                model="gpt-4o-mini", messages=MSGS, max_tokens=300, stream=True
            ):
                got.append(chunk)
            box.append(("ended", len(got)))
        except Exception as exc:
            box.append((type(exc).__name__, len(got)))

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.4)
    proxy.control.put({"id": "eu-down", "kind": "region_outage", "where": {"region": "eu"}})
    t.join(10)
    assert box and box[0][0] == "APIConnectionError" and 0 < box[0][1] < 300


def test_selectors_hit_only_what_they_select(proxy: ProxyProcess) -> None:
    proxy.control.load(
        [
            {
                "id": "m",
                "kind": "http_error",
                "where": {"model": "gpt-4o"},
                "params": {"status": 500},
            },
            {
                "id": "p",
                "kind": "http_error",
                "where": {"path": "/v1/embeddings"},
                "params": {"status": 502},
            },
            {
                "id": "w",
                "kind": "http_error",
                "where": {"workload": "rag"},
                "params": {"status": 503},
            },
            {"id": "r", "kind": "http_error", "where": {"region": "eu"}, "params": {"status": 504}},
        ]
    )
    na = _client(proxy.region_urls["na"])
    assert len(_texts(_stream(na, n=2))) == 2  # gpt-4o-mini, chat, no workload, na
    with pytest.raises(openai.InternalServerError) as info:
        na.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=2)
    assert info.value.status_code == 500
    with pytest.raises(openai.InternalServerError) as info:
        na.embeddings.create(model="text-embedding-3-small", input="x")
    assert info.value.status_code == 502
    with pytest.raises(openai.InternalServerError) as info:
        na.chat.completions.create(
            model="gpt-4o-mini",
            messages=MSGS,
            max_tokens=2,
            extra_headers={"x-loadkit-workload": "rag"},
        )
    assert info.value.status_code == 503
    with pytest.raises(openai.InternalServerError) as info:
        _stream(_client(proxy.region_urls["eu"]), n=2)
    assert info.value.status_code == 504
    hits = {f["id"]: f["hits"] for f in proxy.control.status()["faults"]}
    assert hits == {"m": 1, "p": 1, "w": 1, "r": 1}


def test_api_key_selector_compares_digests(proxy: ProxyProcess) -> None:
    from loadkit.chaos.faults import key_digest

    proxy.control.put(
        {
            "id": "k",
            "kind": "http_error",
            "where": {"api_key_sha256": key_digest("sk-team-a")},
            "params": {"status": 429},
        }
    )
    a = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-team-a", max_retries=0)
    b = openai.OpenAI(base_url=proxy.url + "/v1", api_key="sk-team-b", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        a.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=2)
    assert b.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=2).usage
    assert "sk-team-a" not in json.dumps(proxy.control.status())


def test_control_api_lifecycle_and_journal(proxy: ProxyProcess) -> None:
    c = proxy.control
    f = {"id": "x", "kind": "latency", "rate": 0.5, "params": {"fixed_ms": 10}}
    assert c.call("POST", "/faults", f)["fault"]["id"] == "x"
    with pytest.raises(ChaosControlError, match="409"):
        c.call("POST", "/faults", f)
    patched = c.call("PATCH", "/faults/x", {"rate": 0.25, "params": {"jitter_ms": 5}})["fault"]
    assert patched["rate"] == 0.25 and patched["params"] == {"fixed_ms": 10, "jitter_ms": 5}
    with pytest.raises(ChaosControlError, match="400"):
        c.call("PATCH", "/faults/x", {"rate": 2})
    with pytest.raises(ChaosControlError, match="400"):
        c.call("PUT", "/faults/y", {"kind": "stall", "params": {"after_tokens": 1, "after_ms": 5}})
    assert [x["id"] for x in c.call("GET", "/faults")["faults"]] == ["x"]
    assert c.remove("x") and not c.remove("x")
    events = [e["event"] for e in c.call("GET", "/journal")["journal"]]
    assert events[-3:] == ["start", "update", "end"]


def test_load_takes_a_yaml_fault_file_as_it_is(proxy: ProxyProcess) -> None:
    text = "faults:\n  - {id: y, kind: http_error, params: {status: 502}}\n"
    r = http_request(
        "POST",
        proxy.url + "/chaos/load",
        content=text.encode(),
        headers={"Content-Type": "application/yaml"},
    )
    assert r.status_code == 200 and [f["id"] for f in r.json()["faults"]] == ["y"]
    bad = http_request(
        "POST", proxy.url + "/chaos/load", content=b"[: x", headers={"Content-Type": "text/yaml"}
    )
    assert bad.status_code == 400 and "YAML" in bad.json()["error"]["message"]
    with pytest.raises(openai.InternalServerError):
        _stream(_client(proxy.url), n=2)


def test_control_api_token(tmp_path: Path) -> None:
    with mock_and_proxy(tmp_path, token="s3cret") as (_, proxy):
        with pytest.raises(ChaosControlError, match="403"):
            ChaosControl(proxy.url).status()
        assert proxy.control.status()["faults"] == []
        # the token gates the control API only, not the proxied traffic
        assert len(_texts(_stream(_client(proxy.url), n=2))) == 2
