"""The fault model without a network: validation, the header language, the categorical draw."""

from __future__ import annotations

import numpy as np
import pytest

from loadkit.chaos.faults import (
    FaultSet,
    FaultSpec,
    FaultSpecError,
    RequestInfo,
    Selector,
    choose,
    fault_from_json,
    fault_from_scenario,
    key_digest,
    parse_header,
)
from loadkit.chaos.sse import CONTENT, DONE, OTHER, USAGE, FrameSplitter, classify
from loadkit.scenario.model import FAULT_KINDS, Fault, FaultWhere


def test_every_scenario_kind_is_executable() -> None:
    minimal = {
        "http_error": {"status": 503},
        "latency": {"fixed_ms": 10},
        "slow_tokens": {"factor": 2},
        "brownout": {"error_rate": 0.5},
        "stall": {"after_tokens": 1},
    }
    for kind in FAULT_KINDS:
        where = {"region": "na"} if kind == "region_outage" else {}
        spec = fault_from_json({"kind": kind, "params": minimal.get(kind, {}), "where": where})
        assert spec.kind == kind and fault_from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("obj", "word"),
    [
        ({"kind": "boom"}, "kind"),
        ({"kind": "http_error"}, "status"),
        ({"kind": "http_error", "params": {"status": 418}}, "status"),
        ({"kind": "latency", "params": {"fixed_ms": -1}}, "fixed_ms"),
        ({"kind": "cut", "params": {"factor": 2}}, "not valid for cut"),
        ({"kind": "stall", "params": {}}, "exactly one"),
        ({"kind": "region_outage"}, "where.region"),
        ({"kind": "reset", "rate": 1.5}, "rate"),
        ({"kind": "reset", "where": {"zone": "x"}}, "zone"),
        ({"kind": "reset", "max_hits": -1}, "max_hits"),
        ({"kind": "reset", "extra": 1}, "extra"),
        ({"kind": "reset", "id": "a,b"}, "id"),
    ],
)
def test_bad_faults_are_refused_with_the_key_named(obj: dict, word: str) -> None:
    with pytest.raises(FaultSpecError, match=word):
        fault_from_json(obj)


def test_header_language() -> None:
    assert parse_header("stall_after_tokens=50").params == {"after_tokens": 50}
    assert parse_header("kind=stall; after_ms=250").params == {"after_ms": 250.0}
    s = parse_header("status=429, retry_after_ms=1500, id=storm, first=2")
    assert (s.kind, s.id, s.max_hits, s.params["status"]) == ("http_error", "storm", 2, 429)
    assert parse_header("latency_ms=300").params == {"fixed_ms": 300.0}
    assert parse_header("cut_after_tokens=3").kind == "cut"
    with pytest.raises(FaultSpecError):
        parse_header("first=x;status=500")


def test_scenario_faults_translate_and_keys_never_leave_as_text() -> None:
    f = Fault(
        id="storm",
        at_s=10,
        for_s=5,
        kind="http_error",
        rate=0.4,
        where=FaultWhere(region="na", api_key="TEAM_KEY"),
        params={"status": 429, "retry_after_ms": 2000.0},
    )
    spec = fault_from_scenario(f, {"TEAM_KEY": "sk-abc"})
    assert spec.where.api_key_sha256 == key_digest("sk-abc") and "sk-abc" not in str(spec)
    assert spec.to_json()["params"] == {"status": 429, "retry_after_ms": 2000.0}
    unset = fault_from_scenario(f, {})
    assert unset.where.api_key_sha256 is not None
    assert not unset.where.matches(RequestInfo(region="na", path="/v1", api_key_sha256=""))


def test_categorical_draw_keeps_each_rate() -> None:
    a = FaultSpec("a", "reset", 0.3)
    b = FaultSpec("b", "reset", 0.2)
    rng = np.random.default_rng(1)
    picks = [choose([a, b], float(u)) for u in rng.random(20000)]
    share = {k: sum(1 for p in picks if (p.id if p else None) == k) / 20000 for k in "ab"}
    assert abs(share["a"] - 0.3) < 0.015 and abs(share["b"] - 0.2) < 0.015
    assert choose([a, b], 0.29).id == "a" and choose([a, b], 0.49).id == "b"
    assert choose([a, b], 0.5) is None and choose([], 0.0) is None
    big = [FaultSpec("x", "reset", 1.0), FaultSpec("y", "reset", 1.0)]
    assert choose(big, 0.49).id == "x" and choose(big, 0.51).id == "y"


def test_fault_set_selects_counts_and_exhausts() -> None:
    fs = FaultSet()
    fs.put(FaultSpec("eu", "reset", 1.0, Selector(region="eu")))
    fs.put(FaultSpec("m", "reset", 1.0, Selector(model="gpt-4o", path="/v1/chat"), max_hits=1))
    assert fs.needs_model and not fs.needs_key
    na = RequestInfo(region="na", path="/v1/chat/completions", model="gpt-4o")
    assert fs.pick(na, 0.1).id == "m"
    fs.counters["m"].hits += 1
    assert fs.pick(na, 0.1) is None  # exhausted
    assert fs.pick(RequestInfo(region="eu", path="/v1/embeddings"), 0.99).id == "eu"
    assert fs.counters["eu"].considered == 1 and fs.counters["m"].considered == 1
    fs.remove("m")
    assert not fs.needs_model and len(fs) == 1


def test_sse_frames_and_kinds() -> None:
    sp = FrameSplitter()
    stream = (
        b'data: {"choices":[{"delta":{"role":"assistant","content":""}}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"hi "}}]}\r\n\r\n'
        b'data: {"choices":[{"delta":{"reasoning_content":"hm"}}]}\n\n'
        b'data: {"choices":[],"usage":{"completion_tokens":2}}\n\n'
        b"data: [DONE]\n\n"
    )
    frames = [f for i in range(0, len(stream), 7) for f in sp.feed(stream[i : i + 7])]
    assert [classify(f) for f in frames] == [OTHER, CONTENT, CONTENT, USAGE, DONE]
    assert sp.rest() == b""
    assert classify(b": keep-alive\n\n") == OTHER and classify(b"data: {oops\n\n") == OTHER
