"""One named region: its profile, engine, rate limiter, prefix cache and seeded draws."""

from __future__ import annotations

import hashlib
import math
import struct
from collections import OrderedDict
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from mocks.engine import Engine
from mocks.metrics import EngineMetrics
from mocks.prefix_cache import PrefixCache
from mocks.profile import Profile
from mocks.ratelimit import RateLimiter
from mocks.words import TOKEN_COUNT

_Z90 = 1.2815515655446004  # standard normal quantile at 0.9
_normal = NormalDist()
_SIX_U64 = struct.Struct("<6Q")
_TWO_M53 = 2.0**-53
_HALF_ULP = 2.0**-54  # uniforms in (0, 1): centred in their 2**-53 bins


@dataclass(frozen=True)
class Plan:
    """The seeded draws of one request."""

    natural_tokens: int  # output length before max_tokens caps it
    prefill_factor: float  # jitter multiplier on prefill time
    word0: int


class Region:
    def __init__(self, name: str, index: int, profile: Profile, seed: int) -> None:
        self.name = name
        self.index = index
        self.initial = profile
        self.profile = profile
        self.seed = seed
        self.metrics = EngineMetrics()
        self.engine = Engine(profile, np.random.SeedSequence([seed, index, 1]), self.metrics)
        self.limiter = RateLimiter(profile.rate_limits)
        self.cache = PrefixCache(profile.prefix_cache)
        self.down: str | bool = False  # False | "refuse" | "503"
        self.url = ""
        self.port = profile.port
        self.runner: Any = None  # aiohttp AppRunner of the region's own listener
        self.site: Any = None
        self._counters: OrderedDict[bytes, int] = OrderedDict()
        self._key_prefix = f"{seed}:{name}:".encode()  # regions draw independently
        self._ids = 0

    def configure(self, profile: Profile) -> None:
        self.profile = profile
        self.engine.set_profile(profile)
        self.limiter.configure(profile.rate_limits)
        self.cache.configure(profile.prefix_cache)

    def reset(self) -> None:
        self.configure(self.initial)
        self.limiter.configure(self.initial.rate_limits)
        self.limiter._req.clear()
        self.limiter._tok.clear()
        self.cache.clear()
        self._counters.clear()

    def next_id(self) -> str:
        self._ids += 1
        raw = f"{self.seed}:{self.name}:{self._ids}".encode()
        return hashlib.blake2b(raw, digest_size=12).hexdigest()

    def plan(self, content: bytes) -> Plan:
        """Draws depend on the seed, the request content and how often it was seen before."""
        digest = hashlib.blake2b(content, digest_size=8).digest()
        counters = self._counters
        n = counters.get(digest, 0)
        counters[digest] = n + 1
        if len(counters) > 200_000:
            counters.popitem(last=False)
        # Counter-based draws: six 53-bit uniforms straight from a keyed hash of
        # (seed, region, repeat count, content), so no generator state is built or carried
        # between requests and arrival order cannot change them.
        key = hashlib.blake2b(self._key_prefix + b"%d:" % n + digest, digest_size=48).digest()
        u = [(x >> 11) * _TWO_M53 + _HALF_ULP for x in _SIX_U64.unpack(key)]
        z = _normal.inv_cdf(u[0])
        u_tail, u_pareto = u[1], u[2]
        z_prefill = _normal.inv_cdf(u[3])
        out = self.profile.output_tokens
        if out.dist == "lognormal":
            sigma = math.log(out.p90 / out.median) / _Z90
            natural = round(out.median * math.exp(sigma * z))
        elif out.dist == "fixed":
            natural = out.value
        else:
            natural = out.low + int(u[5] * (out.high - out.low + 1))
        natural = max(1, min(out.max, natural))
        jit = self.profile.jitter
        factor = math.exp(jit.sigma * z_prefill) if jit.sigma > 0 else 1.0
        if jit.tail_prob > 0 and u_tail < jit.tail_prob:
            factor *= min(jit.tail_max, (1.0 - u_pareto) ** (-1.0 / jit.tail_alpha))
        word0 = int(u[4] * TOKEN_COUNT)
        return Plan(natural_tokens=natural, prefill_factor=factor, word0=word0)

    def prefill_seconds(self, uncached_tokens: int, factor: float) -> float:
        """At latency_scale 1 (the engine applies the current scale at admission)."""
        p = self.profile
        return (p.prefill_overhead_ms + uncached_tokens * p.prefill_ms_per_token) * factor / 1000
