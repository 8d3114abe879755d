"""Observed fault rates over 2,000 real requests match the configured ones (one draw each)."""

from __future__ import annotations

import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.chaos_support import mock_and_proxy
from tests.conftest import http_request

N = 2000


def _within(observed: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    sd = math.sqrt(n * p * (1 - p))
    return abs(observed - n * p) <= sigmas * sd + 1


def _fire(urls: list[str], n: int) -> list[tuple[int, str]]:
    def one(i: int) -> tuple[int, str]:
        r = http_request(
            "POST",
            urls[i % len(urls)] + "/v1/embeddings",
            json_body={"model": "text-embedding-3-small", "input": f"x{i}", "dimensions": 8},
        )
        return r.status_code, r.headers.get("x-loadkit-fault") or ""

    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(n)))


def test_rates_selectors_and_the_single_draw(tmp_path: Path) -> None:
    with mock_and_proxy(tmp_path, seed=11) as (_, proxy):
        proxy.control.load(
            [
                {"id": "e500", "kind": "http_error", "rate": 0.2, "params": {"status": 500}},
                {"id": "e503", "kind": "http_error", "rate": 0.1, "params": {"status": 503}},
                {"id": "lat", "kind": "latency", "rate": 0.3, "params": {"fixed_ms": 0}},
                # selects eu only: na requests must never see it
                {
                    "id": "eu429",
                    "kind": "http_error",
                    "rate": 0.25,
                    "where": {"region": "eu"},
                    "params": {"status": 429},
                },
            ]
        )
        urls = [proxy.region_urls["na"], proxy.region_urls["eu"]]
        results = _fire(urls, N)
        status = {f["id"]: f for f in proxy.control.status()["faults"]}
    na = Counter(tag for i, (_, tag) in enumerate(results) if i % 2 == 0)
    eu = Counter(tag for i, (_, tag) in enumerate(results) if i % 2 == 1)
    half = N // 2
    assert na["eu429"] == 0
    # na: 0.2 / 0.1 / 0.3, untouched 0.4 -- not 0.2, 0.08, 0.21 as cascading draws would give
    assert _within(na["e500"], half, 0.2), na
    assert _within(na["e503"], half, 0.1), na
    assert _within(na["lat"], half, 0.3), na
    assert _within(na[""], half, 0.4), na
    # eu: rates add up to 0.85, each keeps its own
    assert _within(eu["eu429"], half, 0.25), eu
    assert _within(eu[""], half, 0.15), eu
    # tags agree with statuses, and the proxy's counters with what clients saw
    for code, tag in results:
        assert code == {"e500": 500, "e503": 503, "eu429": 429}.get(tag, 200)
    assert status["e500"]["hits"] == na["e500"] + eu["e500"]
    assert status["eu429"]["considered"] == half
    assert status["e500"]["considered"] == N


def test_rates_over_one_are_shared_in_proportion(tmp_path: Path) -> None:
    with mock_and_proxy(tmp_path, seed=5) as (_, proxy):
        proxy.control.load(
            [
                {"id": "a", "kind": "http_error", "rate": 0.9, "params": {"status": 500}},
                {"id": "b", "kind": "http_error", "rate": 0.3, "params": {"status": 503}},
            ]
        )
        tags = Counter(tag for _, tag in _fire([proxy.url], 800))
    assert tags[""] == 0
    assert _within(tags["a"], 800, 0.75) and _within(tags["b"], 800, 0.25), tags
