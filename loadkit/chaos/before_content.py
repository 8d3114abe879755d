"""Behaviours of the faults that act before the upstream is called, by kind name.

Each takes the request (`Call`) and its fault and returns the proxy's answer, or None to
forward the request (delayed, tagged). The kinds and their parameters are in `kinds.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from loadkit.apis.registry import API_HEADER, api_of_request
from loadkit.chaos import conn, responses
from loadkit.chaos.body import BodyRejected, model_of
from loadkit.chaos.faults import FaultSpec


@dataclass(frozen=True)
class Call:
    """One proxied request as a before-content behaviour sees it."""

    request: web.Request
    body: bytes
    rng: np.random.Generator  # the proxy's: draws stay reproducible by `--seed`
    hit: Callable[[FaultSpec], None]  # counts the fault as applied


Behaviour = Callable[[Call, FaultSpec], Awaitable[web.StreamResponse | None]]
BEHAVIOURS: dict[str, Behaviour] = {}


def behaviour(*names: str) -> Callable[[Behaviour], Behaviour]:
    """Register the decorated function as what the kinds `names` do."""

    def register(fn: Behaviour) -> Behaviour:
        for name in names:
            BEHAVIOURS[name] = fn
        return fn

    return register


def error_answer(spec: FaultSpec, status: int, retry_after_ms: Any, body: bytes) -> web.Response:
    """A provider-realistic error; a 429 names the request's model like a provider does."""
    ra = float(retry_after_ms) if retry_after_ms is not None else None
    model = ""
    if status == 429:
        with contextlib.suppress(BodyRejected):
            model = model_of(body)
    out, headers = responses.error_response(status, spec.id, ra, model)
    return web.Response(body=out, status=status, headers=headers)


@behaviour("brownout")
async def brownout(call: Call, spec: FaultSpec) -> web.StreamResponse | None:
    p = spec.params
    call.hit(spec)
    if call.rng.random() < float(p["error_rate"]):
        return error_answer(spec, int(p.get("status", 503)), None, call.body)
    await asyncio.sleep(float(p.get("added_latency_ms", 0.0)) / 1000.0)
    return None


@behaviour("http_error")
async def http_error(call: Call, spec: FaultSpec) -> web.StreamResponse | None:
    call.hit(spec)
    p = spec.params
    return error_answer(spec, int(p["status"]), p.get("retry_after_ms"), call.body)


@behaviour("overloaded")
async def overloaded(call: Call, spec: FaultSpec) -> web.StreamResponse | None:
    """Anthropic's 529 (its body, `request-id`, `x-should-retry: true`), or the same status
    in OpenAI's error shape for the other APIs."""
    call.hit(spec)
    api = api_of_request(call.request.path, call.request.headers.get(API_HEADER))
    headers = {
        "content-type": "application/json",
        "request-id": f"req_chaos_{spec.id}",
        "x-should-retry": "true",
    }
    ra = spec.params.get("retry_after_ms")
    if ra is not None:
        headers["retry-after"] = str(max(1, math.ceil(float(ra) / 1000.0)))
    return web.Response(body=responses.overloaded(api, spec.id), status=529, headers=headers)


@behaviour("latency")
async def latency(call: Call, spec: FaultSpec) -> web.StreamResponse | None:
    call.hit(spec)
    delay_ms = float(spec.params["fixed_ms"])
    jitter = float(spec.params.get("jitter_ms", 0.0))
    if jitter > 0:
        # Lomax (Pareto II), shape 2.5, scaled to mean `jitter`: a heavy tail, capped.
        delay_ms += min(jitter * 1.5 * float(call.rng.pareto(2.5)), jitter * 100)
    await asyncio.sleep(delay_ms / 1000.0)
    return None


# region_outage per request (through the front listener, or at rate < 1): a refusal. The
# whole-listener outage is the proxy's (`ChaosProxy._apply_outages`).
@behaviour("refuse", "region_outage")
async def refuse(call: Call, spec: FaultSpec) -> web.StreamResponse | None:
    call.hit(spec)
    t = call.request.transport
    if t is not None:
        t.close()  # FIN before any byte: the client's connection just ends
    return web.Response()


@behaviour("reset")
async def reset(call: Call, spec: FaultSpec) -> web.StreamResponse | None:
    call.hit(spec)
    conn.reset(call.request.transport)
    return web.Response()


@behaviour("hang")
async def hang(call: Call, spec: FaultSpec) -> web.StreamResponse | None:
    call.hit(spec)
    await conn.hold(call.request)
    conn.reset(call.request.transport)
    return web.Response()
