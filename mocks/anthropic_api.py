"""Anthropic's Messages API (`POST /v1/messages`) on the region's engine, streamed and not.

Requests are checked as Anthropic checks them (`anthropic-version`, `x-api-key`, the body's
fields) and every error is Anthropic's `{"type": "error", "error": {"type", "message"},
"request_id"}` with a `request-id` header. The engine is the same one the OpenAI routes use:
the same queue, prefill, decode loop, prefix cache and rate limiter, and the same ground-truth
headers (`x-mock-queue-ms`, `x-mock-ttft-ms`, `x-mock-region`).

Prompt caching follows Anthropic: only a request that marks a `cache_control` breakpoint
(on a `system` block or a message's content block) reads or writes the cache, for the prefix
up to and including that block. Cached blocks it finds are `cache_read_input_tokens`, the
rest of the prefix is `cache_creation_input_tokens` (now cached), and `input_tokens` is the
uncached rest of the prompt (Anthropic's convention: it excludes cache reads and writes).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from loadkit.tokens import estimate_tokens
from mocks import generation, params
from mocks.body import INVALID_JSON
from mocks.common import (
    DIALECT,
    Dialect,
    RegionLookup,
    bearer,
    bind,
    check_region,
    ended,
    key_state,
    request_id,
)
from mocks.engine import QueueFull
from mocks.errors import ApiError
from mocks.profile import ModelSpec
from mocks.region import Region
from mocks.words import text_of

TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
        "timeout_error",
    }
)
STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}
VERSION = re.compile(r"\d{4}-\d{2}-\d{2}")
# listed by GET /v1/models (Anthropic's shape); any other claude-* id is served too
CLAUDE_MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
STOP_REASONS = {"natural": "end_turn", "cap": "max_tokens", "stop": "stop_sequence"}


class AnthropicDialect(Dialect):
    name = "anthropic"

    def error(self, request: web.Request, exc: ApiError) -> web.Response:
        status, message = exc.status, exc.message
        if exc.code == "overloaded":  # the region is overloaded: Anthropic's 529
            status, message = 529, "Overloaded"
        kind = exc.type if exc.type in TYPES else None
        if kind is None:
            kind = STATUS_TYPES.get(status)
        if kind is None:
            kind = "api_error" if status >= 500 else "invalid_request_error"
        if message == INVALID_JSON:
            message = "There was an error parsing the body of your request: expected a JSON object."
        body = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": request_id(request),
        }
        resp = web.json_response(body, status=status, headers=exc.headers)
        if exc.close:
            resp.force_close()
        return resp

    def stamp(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["request-id"] = request_id(request)


ANTHROPIC = AnthropicDialect()


def _bad(message: str) -> ApiError:
    return ApiError(400, message, "invalid_request_error")


@dataclass
class Ask:
    """What a Messages request asks for, as the engine needs it."""

    model: str
    spec: ModelSpec
    max_tokens: int
    parts: list[str] = field(default_factory=list)  # system blocks, then message blocks
    breakpoint: int = -1  # index of the last part marked with cache_control
    stream: bool = False
    stop_sequences: list[str] = field(default_factory=list)


def _blocks(value: Any, where: str, ask: Ask, allow_other: bool) -> None:
    """Text of a string or a list of content blocks into `ask.parts`."""
    if isinstance(value, str):
        ask.parts.append(value)
        return
    if not isinstance(value, list):
        raise _bad(f"{where}: Input should be a valid string or a valid list")
    for j, block in enumerate(value):
        at = f"{where}.{j}"
        if not isinstance(block, dict):
            raise _bad(f"{at}: Input should be a valid dictionary")
        kind = block.get("type")
        if not isinstance(kind, str):
            raise _bad(f"{at}.type: Field required")
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                what = "Field required" if text is None else "Input should be a valid string"
                raise _bad(f"{at}.text: {what}")
            ask.parts.append(text)
        elif not allow_other:
            raise _bad(f"{at}.type: Input should be 'text'")
        else:  # image, document, tool_use, tool_result...: their text if any, else nothing
            inner = block.get("content", block.get("text", ""))
            ask.parts.append(inner if isinstance(inner, str) else json.dumps(inner))
        cc = block.get("cache_control")
        if cc is not None:
            if not isinstance(cc, dict) or cc.get("type") != "ephemeral":
                raise _bad(f"{at}.cache_control.type: Input should be 'ephemeral'")
            ask.breakpoint = len(ask.parts) - 1


def _int(data: dict[str, Any], name: str) -> int:
    if name not in data:
        raise _bad(f"{name}: Field required")
    v = data[name]
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(f"{name}: Input should be a valid integer")
    if v < 1:
        raise _bad(f"{name}: Input should be greater than or equal to 1")
    return v


def parse(data: dict[str, Any], region: Region) -> Ask:
    """The request's fields, checked in Anthropic's words; 404 for an unknown model."""
    if "model" not in data:
        raise _bad("model: Field required")
    model = data["model"]
    if not isinstance(model, str):
        raise _bad("model: Input should be a valid string")
    max_tokens = _int(data, "max_tokens")
    if "messages" not in data:
        raise _bad("messages: Field required")
    messages = data["messages"]
    if not isinstance(messages, list):
        raise _bad("messages: Input should be a valid list")
    if not messages:
        raise _bad("messages: at least one message is required")
    spec = _model(model, region)
    ask = Ask(model=model, spec=spec, max_tokens=max_tokens)
    system = data.get("system")
    if system is not None:
        _blocks(system, "system", ask, allow_other=False)
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            raise _bad(f"{where}: Input should be a valid dictionary")
        if msg.get("role") not in ("user", "assistant"):
            raise _bad(f"{where}.role: Input should be 'user' or 'assistant'")
        if "content" not in msg:
            raise _bad(f"{where}.content: Field required")
        _blocks(msg["content"], f"{where}.content", ask, allow_other=True)
    ask.stream = _flag(data, "stream")
    stops = data.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise _bad("stop_sequences: Input should be a valid list of non-empty strings")
        ask.stop_sequences = stops
    for name, top in (("temperature", 1.0), ("top_p", 1.0)):
        v = data.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _bad(f"{name}: Input should be a valid number")
        if not 0.0 <= v <= top:
            raise _bad(f"{name}: Input should be between 0 and {top:g}")
    meta = data.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise _bad("metadata: Input should be a valid dictionary")
    return ask


def _flag(data: dict[str, Any], name: str) -> bool:
    v = data.get(name, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _bad(f"{name}: Input should be a valid boolean")
    return v


def _model(model: str, region: Region) -> ModelSpec:
    """A chat model of the profile, or any `claude-*` id (served by the first chat model)."""
    spec = region.profile.model(model)
    if spec is not None and spec.kind == "chat":
        return spec
    chat = [m for m in region.profile.models if m.kind == "chat"]
    if model.startswith("claude") and chat:
        return chat[0]
    raise ApiError(404, f"model: {model}", "not_found_error")


def _model_info(model: str) -> dict[str, str]:
    return {
        "type": "model",
        "id": model,
        "display_name": model,
        "created_at": "2025-01-01T00:00:00Z",
    }


def _stop_at(text: str, stops: list[str]) -> tuple[int, str] | None:
    """(tokens before the first stop sequence found after the first token, the sequence)."""
    best: tuple[int, str] | None = None
    for s in stops:
        p = text.find(s, 4)
        if p >= 0 and (best is None or p // 4 < best[0]):
            best = (p // 4, s)
    return best


def _rfc3339(seconds_from_now: float) -> str:
    t = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def rate_limit(region: Region, key: str, tokens: int) -> dict[str, str]:
    """Anthropic's rate-limit headers; 429 `rate_limit_error` with `retry-after` past them."""
    d = region.limiter.check(key, tokens, asyncio.get_running_loop().time())
    headers: dict[str, str] = {}
    for kind, limit, remaining, reset_s in d.buckets:
        headers[f"anthropic-ratelimit-{kind}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{kind}-remaining"] = str(remaining)
        headers[f"anthropic-ratelimit-{kind}-reset"] = _rfc3339(reset_s)
    if d.allowed:
        return headers
    unit = "requests per minute" if d.kind == "requests" else "input tokens per minute"
    msg = (
        f"This request would exceed the rate limit for your organization (org-mock) of "
        f"{d.limit} {unit}. For details, refer to: https://docs.claude.com/en/api/rate-limits. "
        "You can see the response headers for current usage. Please reduce the prompt length "
        "or the maximum tokens requested, or try again later."
    )
    if math.isfinite(d.retry_after_s):
        headers["retry-after"] = str(max(1, math.ceil(d.retry_after_s)))
    raise ApiError(429, msg, "rate_limit_error", headers=headers)


def overloaded(exc: QueueFull) -> ApiError:
    """The engine's queue is full: Anthropic's 529 (with a `retry-after` estimate)."""
    headers = {"retry-after": str(max(1, math.ceil(exc.retry_after_s)))}
    return ApiError(529, "Overloaded", "overloaded_error", headers=headers)


def _event(name: str, obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return f"event: {name}\ndata: {data}\n\n".encode()


OVERLOADED_EVENT = _event(
    "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
)
TOKEN_PRE = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"'
)
TOKEN_POST = b'"}}\n\n'


class AnthropicApi:
    """`POST /v1/messages` bound to a way of finding the request's region."""

    def __init__(self, lookup: RegionLookup, body_timeout_s: float = 30.0) -> None:
        self.lookup = lookup
        self.body_timeout_s = body_timeout_s

    def add_routes(self, app: web.Application, prefix: str = "") -> None:
        app.router.add_post(f"{prefix}/v1/messages", bind(ANTHROPIC, self.messages))

    def _gate(self, request: web.Request) -> tuple[Region, str]:
        """The region and key, after Anthropic's version and key checks."""
        region = self.lookup(request)
        check_region(region)
        version = request.headers.get("anthropic-version")
        if version is None:
            raise _bad("anthropic-version: header is required")
        if not VERSION.fullmatch(version.strip()):
            raise _bad(f'anthropic-version: "{version[:40]}" is not a valid version')
        # x-api-key, or the key as a bearer token (what recent SDKs send)
        key = request.headers.get("x-api-key", "").strip() or bearer(request)
        state = key_state(region, key)
        if state == "missing":
            raise ApiError(401, "x-api-key header is required", "authentication_error")
        if state == "wrong":
            raise ApiError(401, "invalid x-api-key", "authentication_error")
        return region, key

    async def models(self, request: web.Request) -> web.StreamResponse:
        """`GET /v1/models[/{id}]` with `anthropic-version`: Anthropic's model list or
        model: the profile's chat models and `CLAUDE_MODELS` (any `claude-*` id exists)."""
        request[DIALECT] = ANTHROPIC
        region, _ = self._gate(request)
        wanted = request.match_info.get("model")
        if wanted is not None:
            _model(wanted, region)  # 404 not_found_error unless it is served
            return web.json_response(_model_info(wanted))
        ids = [*CLAUDE_MODELS, *(m.id for m in region.profile.models if m.kind == "chat")]
        data = [_model_info(i) for i in ids]
        return web.json_response(
            {"data": data, "has_more": False, "first_id": ids[0], "last_id": ids[-1]}
        )

    async def messages(self, request: web.Request) -> web.StreamResponse:
        region, key = self._gate(request)
        data, body = await params.read_json(
            request, region.profile.max_body_bytes, self.body_timeout_s
        )
        ask = parse(data, region)
        counts = [estimate_tokens(p) for p in ask.parts]
        prompt_tokens = sum(counts)
        ctx = region.profile.context_length
        if prompt_tokens > ctx:
            raise _bad(f"prompt is too long: {prompt_tokens} tokens > {ctx} maximum")
        if prompt_tokens + ask.max_tokens > ctx:
            raise _bad(
                f"input length and `max_tokens` exceed context limit: {prompt_tokens} + "
                f"{ask.max_tokens} > {ctx}, decrease input length or `max_tokens` and try again"
            )
        plan = region.plan(body)
        n_out, natural = generation.answer_length(region, data, plan, prompt_tokens, ask.max_tokens)
        how, stop_seq = ("natural" if natural else "cap"), None
        if ask.stop_sequences:
            found = _stop_at(text_of(plan.word0, n_out), ask.stop_sequences)
            if found is not None:
                n_out, stop_seq = found
                how = "stop"
        rl_headers = rate_limit(region, key or "anonymous", prompt_tokens + n_out)
        read = created = 0
        if ask.breakpoint >= 0:  # Anthropic caches only up to a marked breakpoint
            cfg = region.cache.config
            prefix_tokens = sum(counts[: ask.breakpoint + 1])
            if cfg.enabled and prefix_tokens >= max(1, cfg.min_prompt_tokens):
                prefix = "\x1e".join(ask.parts[: ask.breakpoint + 1])
                read = region.cache.lookup_and_insert(prefix, prefix_tokens)
                created = prefix_tokens - read
        usage = {
            "input_tokens": prompt_tokens - read - created,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
            "output_tokens": n_out,
        }
        seq = generation.sequence(request, region, prompt_tokens, read, n_out, plan)
        uid = generation.admit(request, region, seq, overloaded)
        try:
            truth = await generation.first_token(request, region, seq)
            if truth is None:
                return ended(region)  # the client went away or the region went down
            headers = {**rl_headers, **truth}
            message = {
                "id": f"msg_{uid}",
                "type": "message",
                "role": "assistant",
                "model": ask.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**usage, "output_tokens": 1},
            }
            reason = STOP_REASONS[how]
            if ask.stream:
                start = (
                    _event("message_start", {"type": "message_start", "message": message})
                    + _event(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": 0,
                            "content_block": {"type": "text", "text": ""},
                        },
                    )
                    + _event("ping", {"type": "ping"})
                )
                end = (
                    _event("content_block_stop", {"type": "content_block_stop", "index": 0})
                    + _event(
                        "message_delta",
                        {
                            "type": "message_delta",
                            "delta": {"stop_reason": reason, "stop_sequence": stop_seq},
                            "usage": usage,
                        },
                    )
                    + _event("message_stop", {"type": "message_stop"})
                )
                return await generation.stream(
                    request,
                    region,
                    seq,
                    headers,
                    "text/event-stream; charset=utf-8",
                    start,
                    TOKEN_PRE,
                    TOKEN_POST,
                    end,
                    OVERLOADED_EVENT,
                )
            if not await generation.whole(region, seq):
                return ended(region)
            message.update(
                content=[{"type": "text", "text": text_of(seq.word0, n_out)}],
                stop_reason=reason,
                stop_sequence=stop_seq,
                usage=usage,
            )
            return web.json_response(message, headers=headers)
        finally:
            region.engine.release(seq)
