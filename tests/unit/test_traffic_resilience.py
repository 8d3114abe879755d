"""Retry, backoff and failover decisions (pure functions, no network)."""

from __future__ import annotations

import email.utils

import numpy as np
import pytest

from loadkit.scenario.model import Retries
from loadkit.traffic import resilience as r


def test_outcome_for_status():
    from loadkit.apis.openai import status_outcome

    assert status_outcome(200) == "ok"
    assert status_outcome(429) == "rate_limited"
    assert status_outcome(503) == "http_error"
    assert status_outcome(400) == "http_error"


def test_retryable_like_the_sdk():
    pol = Retries()
    assert r.is_retryable("rate_limited", 429, {}, pol)
    assert r.is_retryable("http_error", 503, {}, pol)
    assert r.is_retryable("http_error", 408, {}, pol)
    assert not r.is_retryable("http_error", 400, {}, pol)
    assert r.is_retryable("connect_error", 0, None, pol)
    assert r.is_retryable("timeout", 0, None, pol)
    # the server's word wins
    assert r.is_retryable("http_error", 400, {"x-should-retry": "true"}, pol)
    assert not r.is_retryable("http_error", 503, {"x-should-retry": "false"}, pol)
    # nothing to retry, or the user already saw text
    assert not r.is_retryable("ok", 200, {}, pol)
    assert not r.is_retryable("aborted", 0, {}, pol)
    assert not r.is_retryable("stream_cut", 200, {}, pol)
    assert not r.is_retryable("timeout", 200, {}, pol, content_seen=True)
    custom = Retries(retry_on_status=(502,))
    assert r.is_retryable("http_error", 502, {}, custom)
    assert not r.is_retryable("rate_limited", 429, {}, custom)


def test_retry_after_headers():
    now = 1_700_000_000.0
    assert r.parse_retry_after({"retry-after-ms": "250"}, now) == pytest.approx(0.25)
    assert r.parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}, now) == 0.25
    assert r.parse_retry_after({"retry-after": "3"}, now) == 3.0
    assert r.parse_retry_after({"retry-after": "1.5"}, now) == 1.5
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert r.parse_retry_after({"retry-after": date}, now) == pytest.approx(7.0, abs=1.0)
    assert r.parse_retry_after({"retry-after": "soon"}, now) is None
    assert r.parse_retry_after({}, now) is None


def test_delay_honours_the_server_then_backs_off_with_jitter():
    rng = np.random.default_rng(0)
    pol = Retries(backoff_initial_s=0.5, backoff_max_s=8.0, jitter=0.25)
    assert r.retry_delay_s(0, {"retry-after-ms": "1200"}, pol, rng, 0.0) == pytest.approx(1.2)
    # out of range (0 or > 120 s): ignored, exponential backoff instead
    for bad in ("0", "3600"):
        d = r.retry_delay_s(0, {"retry-after": bad}, pol, rng, 0.0)
        assert 0.375 <= d <= 0.5
    delays = [r.retry_delay_s(k, None, pol, rng, 0.0) for k in range(6)]
    for k, d in enumerate(delays):
        base = min(0.5 * 2**k, 8.0)
        assert base * 0.75 <= d <= base
    no_jitter = Retries(jitter=0.0)
    assert r.retry_delay_s(2, None, no_jitter, rng, 0.0) == pytest.approx(2.0)
    ignore = Retries(honour_retry_after=False, jitter=0.0)
    assert r.retry_delay_s(0, {"retry-after-ms": "5000"}, ignore, rng, 0.0) == 0.5


def test_jitter_is_reproducible_from_the_seed():
    pol = Retries()
    a = [r.retry_delay_s(1, None, pol, np.random.default_rng(5), 0.0) for _ in range(3)]
    b = [r.retry_delay_s(1, None, pol, np.random.default_rng(5), 0.0) for _ in range(3)]
    assert a == b


def test_failover_order_and_when_to_leave():
    assert r.failover_order("eu", ("us", "eu", "ap")) == ["eu", "us", "ap"]
    assert r.failover_order("eu", ()) == ["eu"]
    # refused: leave at once; 5xx and timeouts: once the region's retries are spent
    assert r.should_fail_over("connect_error", 0, retries_left=2, has_next=True)
    assert not r.should_fail_over("http_error", 503, retries_left=1, has_next=True)
    assert r.should_fail_over("http_error", 503, retries_left=0, has_next=True)
    assert r.should_fail_over("timeout", 0, retries_left=0, has_next=True)
    # a client error or rate limit is not the region's fault; nowhere to go is nowhere
    assert not r.should_fail_over("http_error", 400, retries_left=0, has_next=True)
    assert not r.should_fail_over("rate_limited", 429, retries_left=0, has_next=True)
    assert not r.should_fail_over("connect_error", 0, retries_left=2, has_next=False)
