"""Per-API-key token buckets for requests and tokens per minute, with OpenAI's headers.

A bucket holds `burst_seconds` worth of its per-minute rate (60 s by default, i.e. the whole
minute's allowance, as OpenAI documents; a smaller value models a provider enforcing the
limit over shorter periods) and refills continuously.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from mocks.profile import RateLimits


def go_duration(seconds: float) -> str:
    """Format like OpenAI's reset headers (Go durations): `644ms`, `1s`, `1.5s`, `6m0s`."""
    if seconds < 1.0:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60.0:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60.0)
    if minutes < 60:
        return f"{int(minutes)}m{round(rest, 3):g}s"
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h{minutes}m{round(rest, 3):g}s"


class Bucket:
    __slots__ = ("capacity", "level", "rate", "t")

    def __init__(self, per_minute: int, burst_seconds: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self.t = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
        self.t = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (inf if it never fits)."""
        if amount > self.capacity:
            return math.inf
        return max(0.0, (amount - self.level) / self.rate)

    def reset_s(self) -> float:
        return (self.capacity - self.level) / self.rate


@dataclass(frozen=True)
class Decision:
    allowed: bool
    headers: dict[str, str]
    kind: str = ""  # "requests" | "tokens" when refused
    retry_after_s: float = 0.0
    limit: int = 0
    used: int = 0
    requested: int = 0
    # (kind, limit per minute, remaining, seconds until full) of each bucket: the numbers
    # behind `headers`, for APIs that name or format them differently (Anthropic, Azure)
    buckets: tuple[tuple[str, int, int, float], ...] = ()


_UNLIMITED = Decision(True, {})


class RateLimiter:
    """Buckets keyed by API key; `check` takes from both buckets or from neither."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self._req: dict[str, Bucket] = {}
        self._tok: dict[str, Bucket] = {}

    def configure(self, limits: RateLimits) -> None:
        if limits != self.limits:
            self.limits = limits
            self._req.clear()
            self._tok.clear()

    def _bucket(self, table: dict[str, Bucket], key: str, rate: int, now: float) -> Bucket:
        b = table.get(key)
        if b is None:
            if len(table) > 100_000:
                table.clear()
            b = table[key] = Bucket(rate, self.limits.burst_seconds, now)
        else:
            b.refill(now)
        return b

    def check(self, key: str, tokens: int, now: float) -> Decision:
        lim = self.limits
        if lim.rpm is None and lim.tpm is None:
            return _UNLIMITED
        headers: dict[str, str] = {}
        buckets: list[tuple[str, int, int, float]] = []
        req = tok = None
        if lim.rpm is not None:
            req = self._bucket(self._req, key, lim.rpm, now)
        if lim.tpm is not None:
            tok = self._bucket(self._tok, key, lim.tpm, now)
        refusal: Decision | None = None
        if req is not None and req.level < 1.0:
            refusal = Decision(
                False,
                headers,
                "requests",
                req.wait_for(1.0),
                lim.rpm or 0,
                math.ceil(req.capacity - req.level - 1e-9),
                1,
            )
        elif tok is not None and tok.level < tokens:
            refusal = Decision(
                False,
                headers,
                "tokens",
                tok.wait_for(tokens),
                lim.tpm or 0,
                math.ceil(tok.capacity - tok.level - 1e-9),
                tokens,
            )
        if refusal is None:
            if req is not None:
                req.level -= 1.0
            if tok is not None:
                tok.level -= tokens
        for kind, bucket, rate in (("requests", req, lim.rpm), ("tokens", tok, lim.tpm)):
            if bucket is None or rate is None:
                continue
            remaining, reset = max(0, int(bucket.level)), bucket.reset_s()
            buckets.append((kind, rate, remaining, reset))
            headers[f"x-ratelimit-limit-{kind}"] = str(rate)
            headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            headers[f"x-ratelimit-reset-{kind}"] = go_duration(reset)
        if refusal is not None:
            return dataclasses.replace(refusal, buckets=tuple(buckets))
        return Decision(True, headers, buckets=tuple(buckets))
