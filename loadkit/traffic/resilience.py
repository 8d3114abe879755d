"""Client resilience policy decisions as pure functions: classify, retry or not, wait how long.

They follow what the official OpenAI Python SDK does, so a load test sees the retries a
real application would make:

- `x-should-retry: true|false` from the server overrides everything else;
- otherwise retry on the policy's `retry_on_status` (default 408, 409, 429 and 5xx), on
  connection errors and on timeouts before the first token. A failure after content has
  arrived (stream cut, stalled) is not retried: the user has already seen part of it;
- the wait honours `retry-after-ms` (milliseconds), then `retry-after` (seconds or an HTTP
  date) when it is positive and at most `RETRY_AFTER_MAX_S`; else exponential backoff
  `backoff_initial_s * 2**retry`, capped at `backoff_max_s`, reduced by up to `jitter`
  (a fraction; the SDK uses 0.25) with a seeded generator.

Failover: a region that refuses connections is left at once for the next one in the
policy's `failover` order; one that keeps answering 5xx or timing out is left when its
retries are spent. Each region gets its own retry budget.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

RETRY_AFTER_MAX_S = 120.0  # the SDK's MAX_RETRY_AFTER_DELAY (openai-python 3.x)
# 529: Anthropic's "overloaded" (both SDKs retry every 5xx)
DEFAULT_RETRY_STATUS: frozenset[int] = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
RETRYABLE_OUTCOMES: frozenset[str] = frozenset(
    {"connect_error", "timeout", "rate_limited", "http_error", "overloaded"}
)
# After retries: these mean "this region is unwell", worth trying another one.
FAILOVER_OUTCOMES: frozenset[str] = frozenset(
    {"connect_error", "timeout", "http_error", "overloaded"}
)


class RetriesLike(Protocol):
    max_retries: int
    backoff_initial_s: float
    backoff_max_s: float
    jitter: Any
    honour_retry_after: bool
    retry_on_status: Sequence[int]


def _retry_statuses(retries: RetriesLike) -> frozenset[int]:
    codes = getattr(retries, "retry_on_status", None)
    return frozenset(int(c) for c in codes) if codes else DEFAULT_RETRY_STATUS


def is_retryable(
    outcome: str,
    status: int,
    headers: Mapping[str, str] | None,
    retries: RetriesLike,
    content_seen: bool = False,
) -> bool:
    """Whether this failed attempt deserves another attempt (budget aside)."""
    if outcome in ("ok", "aborted"):
        return False
    should = (headers or {}).get("x-should-retry", "").strip().lower()
    if should == "true":
        return True
    if should == "false":
        return False
    if content_seen or outcome not in RETRYABLE_OUTCOMES:
        return False
    if status:
        return status in _retry_statuses(retries)
    return True  # connect error or timeout before any response


def parse_retry_after(headers: Mapping[str, str] | None, now_epoch: float) -> float | None:
    """Seconds the server asked us to wait, or None if it did not say (or said nonsense)."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return when.timestamp() - now_epoch


def jitter_fraction(jitter: Any) -> float:
    """The policy's jitter as a fraction in [0, 1]: a bool means the SDK's 25%."""
    if isinstance(jitter, bool):
        return 0.25 if jitter else 0.0
    try:
        return min(max(float(jitter), 0.0), 1.0)
    except (TypeError, ValueError):
        return 0.25


def retry_delay_s(
    retry_index: int,
    headers: Mapping[str, str] | None,
    retries: RetriesLike,
    rng: np.random.Generator,
    now_epoch: float,
) -> float:
    """Seconds to wait before retry number `retry_index` (0 for the first retry)."""
    if getattr(retries, "honour_retry_after", True):
        asked = parse_retry_after(headers, now_epoch)
        if asked is not None and math.isfinite(asked) and 0.0 < asked <= RETRY_AFTER_MAX_S:
            return asked
    base = min(float(retries.backoff_initial_s) * (2.0**retry_index), float(retries.backoff_max_s))
    return base * (1.0 - jitter_fraction(retries.jitter) * float(rng.random()))


def failover_order(home: str, failover: Sequence[str]) -> list[str]:
    """Regions (or endpoints) to try, home first, each once, in the policy's order."""
    order = [home]
    for target in failover:
        if target not in order:
            order.append(target)
    return order


def should_fail_over(outcome: str, status: int, retries_left: int, has_next: bool) -> bool:
    """Leave this region now? Connection refused: at once; 5xx/timeouts: once retries are spent."""
    if not has_next or outcome not in FAILOVER_OUTCOMES:
        return False
    if outcome == "connect_error":
        return True
    if outcome == "http_error" and status and status < 500:
        return False
    return retries_left <= 0
