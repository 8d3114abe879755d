"""OpenAI-compatible handlers: request validation, errors in OpenAI's shape, SSE streaming.

Parameter checks are in `params`, the pre-encoded stream frames in `frames`.

Streaming responses send their headers with the first token (as hosted APIs do), so the
ground-truth headers `x-mock-queue-ms` / `x-mock-ttft-ms` carry real values. After that the
region's decode loop writes each token straight to the transport from pre-encoded parts
(`Sequence.head + token + Sequence.tail`, already framed as one HTTP chunk).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from loadkit.tokens import estimate_tokens
from mocks import embeddings, frames, generation, params
from mocks.common import (
    OPENAI,
    Handler,
    RegionLookup,
    bearer,
    bind,
    check_region,
    ended,
    key_state,
    shown_key,
)
from mocks.engine import QueueFull, Sequence
from mocks.errors import ApiError
from mocks.frames import dumps as _dumps
from mocks.frames import usage as _usage
from mocks.frames import usage_json as _usage_json  # noqa: F401 (its test imports it from here)
from mocks.generation import EOF_TIMEOUT_S
from mocks.profile import ModelSpec
from mocks.region import Region
from mocks.words import text_of


def _api_key(request: web.Request, region: Region) -> str:
    key = bearer(request)
    state = key_state(region, key)
    if state == "missing":
        raise ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key "
            "in an Authorization header using Bearer auth (i.e. Authorization: "
            "Bearer YOUR_KEY).",
        )
    if state == "wrong":
        raise ApiError(
            401,
            f"Incorrect API key provided: {shown_key(key)}. You can find your API key "
            "at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
    return key or "anonymous"


# ------------------------------------------------------------------ handlers


class Flavour:
    """What differs between OpenAI's API and an API speaking its format (Azure's).

    OpenAI's own: its 429s, no content filter, no extra headers or body fields.
    """

    azure = False

    def rate_limit(self, region: Region, key: str, model: str, tokens: int) -> dict[str, str]:
        return params.rate_limit(region, key, model, tokens)

    def queue_full(self, exc: QueueFull, headers: dict[str, str]) -> ApiError:
        return params.queue_full(exc, headers)

    def check_prompt(self, text: str) -> bool:
        """Raise for a prompt the API refuses; True: the answer is to be filtered halfway."""
        return False

    def headers(self, region: Region) -> dict[str, str]:
        return {}

    def whole_body(self, body: dict[str, Any], finish: str) -> None:
        """Add the API's own fields to a whole (not streamed) answer."""


OPENAI_FLAVOUR = Flavour()


class OpenAIApi:
    """Handlers bound to a way of finding the request's region."""

    def __init__(
        self,
        lookup: RegionLookup,
        body_timeout_s: float = 30.0,
        anthropic_models: Handler | None = None,
    ) -> None:
        self.lookup = lookup
        self.body_timeout_s = body_timeout_s
        # GET /v1/models is also Anthropic's path: a request with `anthropic-version` is its
        self.anthropic_models = anthropic_models
        self._templates: dict[tuple[bool, str, bool, int, bool], frames.Template] = {}

    def add_routes(self, app: web.Application, prefix: str = "") -> None:
        routes = (
            ("POST", "/v1/chat/completions", self.chat),
            ("POST", "/v1/completions", self.completions),
            ("POST", "/v1/embeddings", self.embeddings),
            ("GET", "/v1/models", self.models),
            ("GET", "/v1/models/{model:.+}", self.model),
        )
        for method, path, handler in routes:
            app.router.add_route(method, prefix + path, bind(OPENAI, handler))

    async def models(self, request: web.Request) -> web.StreamResponse:
        if self.anthropic_models is not None and "anthropic-version" in request.headers:
            return await self.anthropic_models(request)
        region = self.lookup(request)
        check_region(region)
        _api_key(request, region)
        return web.json_response(
            {"object": "list", "data": [_model_obj(m) for m in region.profile.models]}
        )

    async def model(self, request: web.Request) -> web.StreamResponse:
        if self.anthropic_models is not None and "anthropic-version" in request.headers:
            return await self.anthropic_models(request)
        region = self.lookup(request)
        check_region(region)
        _api_key(request, region)
        spec = region.profile.model(request.match_info["model"])
        if spec is None:
            raise ApiError(
                404,
                f"The model '{request.match_info['model']}' does not exist",
                param="model",
                code="model_not_found",
            )
        return web.json_response(_model_obj(spec))

    async def chat(self, request: web.Request) -> web.StreamResponse:
        region = self.lookup(request)
        check_region(region)
        key = _api_key(request, region)
        return await self.generate(request, region, key, True, OPENAI_FLAVOUR)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        region = self.lookup(request)
        check_region(region)
        key = _api_key(request, region)
        return await self.generate(request, region, key, False, OPENAI_FLAVOUR)

    async def generate(
        self,
        request: web.Request,
        region: Region,
        key: str,
        chat: bool,
        flavour: Flavour,
        spec: ModelSpec | None = None,
    ) -> web.StreamResponse:
        """A chat or completions answer; `spec` given (Azure's deployment) or from `model`."""
        data, body = await params.read_json(
            request, region.profile.max_body_bytes, self.body_timeout_s
        )
        if spec is None:
            spec = params.model_spec(data, region, "chat")
        if chat:
            text = params.messages_text(data)
            prompt_tokens = sum(estimate_tokens(p) for p in text.split("\x1e"))
        else:
            text, prompt_tokens = params.prompt_text(data)
        max_tokens = params.max_tokens(data)
        stream = params.flag(data, "stream")
        include_usage = stream and params.include_usage(data)
        params.context_check(region, prompt_tokens, max_tokens, "messages" if chat else "prompt")
        filtered = flavour.check_prompt(text)
        plan = region.plan(body)
        n_out, natural = generation.answer_length(region, data, plan, prompt_tokens, max_tokens)
        finish = "stop" if natural else "length"
        if filtered:  # the output filter cut the answer halfway
            n_out, finish = max(1, n_out // 2), "content_filter"
        rl_headers = flavour.rate_limit(region, key, spec.id, prompt_tokens + n_out)
        cached = region.cache.lookup_and_insert(text, prompt_tokens)
        seq = generation.sequence(request, region, prompt_tokens, cached, n_out, plan)
        uid = generation.admit(
            request, region, seq, lambda exc: flavour.queue_full(exc, rl_headers)
        )
        try:
            truth = await generation.first_token(request, region, seq)
            if truth is None:
                return ended(region)  # the client went away or the region went down
            headers = {**rl_headers, **truth, "openai-model": spec.id, **flavour.headers(region)}
            usage = _usage(prompt_tokens, n_out, cached)
            rid = f"{'chatcmpl' if chat else 'cmpl'}-{uid}"
            created = int(time.time())
            if stream:
                return await self._stream(
                    request,
                    region,
                    seq,
                    headers,
                    (chat, spec.id, include_usage, created, flavour.azure),
                    rid,
                    finish,
                    usage if include_usage else None,
                )
            if not await generation.whole(region, seq):
                return ended(region)
            content = text_of(seq.word0, n_out)
            if chat:
                choice: dict[str, Any] = {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
                obj = "chat.completion"
            else:
                choice = {"text": content, "index": 0, "logprobs": None, "finish_reason": finish}
                obj = "text_completion"
            out = {
                "id": rid,
                "object": obj,
                "created": created,
                "model": spec.id,
                "system_fingerprint": "fp_mock",
                "choices": [choice],
                "usage": usage,
            }
            flavour.whole_body(out, finish)
            return web.Response(body=_dumps(out), content_type="application/json", headers=headers)
        finally:
            region.engine.release(seq)

    async def _stream(
        self,
        request: web.Request,
        region: Region,
        seq: Sequence,
        headers: dict[str, str],
        kind: tuple[bool, str, bool, int, bool],
        rid: str,
        finish: str,
        usage: dict[str, Any] | None,
    ) -> web.StreamResponse:
        tpl = self._templates.get(kind)
        if tpl is None:
            if len(self._templates) > 64:
                self._templates.clear()
            chat, model, usage_null, created, azure = kind
            tpl = self._templates[kind] = frames.Template(chat, created, model, usage_null, azure)
        fmt = frames.StreamFormat(tpl, rid)
        return await generation.stream(
            request,
            region,
            seq,
            headers,
            "text/event-stream; charset=utf-8",
            fmt.start_frames(),
            fmt.pre,
            fmt.post,
            fmt.end_frames(finish, usage),
        )

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        region = self.lookup(request)
        check_region(region)
        key = _api_key(request, region)
        return await self.embed(request, region, key, OPENAI_FLAVOUR)

    async def embed(
        self,
        request: web.Request,
        region: Region,
        key: str,
        flavour: Flavour,
        spec: ModelSpec | None = None,
    ) -> web.StreamResponse:
        data, _ = await params.read_json(
            request, region.profile.max_body_bytes, self.body_timeout_s
        )
        if spec is None:
            spec = params.model_spec(data, region, "embedding")
        texts = params.embedding_inputs(data)
        tokens = sum(estimate_tokens(t) if isinstance(t, str) else len(t) for t in texts)
        dims = data.get("dimensions", spec.dimensions)
        if isinstance(dims, bool) or not isinstance(dims, int):
            raise params.invalid_type("dimensions", "an integer", dims)
        if not 1 <= dims <= spec.dimensions:
            raise ApiError(
                400,
                f"Invalid 'dimensions': expected 1 to {spec.dimensions}, got {dims}.",
                param="dimensions",
                code="invalid_value",
            )
        fmt = data.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise ApiError(
                400,
                f"Invalid value for 'encoding_format': '{fmt}'. Supported "
                "values are: 'float' and 'base64'.",
                param="encoding_format",
                code="invalid_value",
            )
        embeddings.check_limits(texts, tokens)
        for t in texts:
            if isinstance(t, str):
                params.context_check(region, estimate_tokens(t), None, "input")
            else:
                params.context_check(region, len(t), None, "input")
        rl_headers = flavour.rate_limit(region, key, spec.id, tokens)
        seq = Sequence(tokens, 0, 0, region.prefill_seconds(tokens, 1.0), 0, request.transport)
        generation.admit(request, region, seq, lambda exc: flavour.queue_full(exc, rl_headers))
        try:
            if not await seq.first:  # type: ignore[misc]
                return ended(region)
            region.engine.finish_prefill_only(seq)
            headers = {
                **rl_headers,
                "x-mock-queue-ms": f"{seq.queue_s * 1000:.3f}",
                "x-mock-region": region.name,
                "openai-model": spec.id,
                **flavour.headers(region),
            }
            pieces = embeddings.body_pieces(texts, spec.id, region.seed, dims, fmt, tokens)
            if embeddings.is_small(len(texts), dims):
                body = b"".join([p async for p in pieces])
                return web.Response(body=body, content_type="application/json", headers=headers)
            return await _send_pieces(request, pieces, headers)
        finally:
            region.engine.release(seq)


def _model_obj(spec: ModelSpec) -> dict[str, Any]:
    return {"id": spec.id, "object": "model", "created": 1700000000, "owned_by": spec.owned_by}


async def _send_pieces(
    request: web.Request, pieces: AsyncIterator[bytes], headers: dict[str, str]
) -> web.StreamResponse:
    """A large body written as it is built (chunked; close-delimited for HTTP/1.0).

    A client that stops reading is cut after EOF_TIMEOUT_S instead of holding the handler.
    """
    resp = web.StreamResponse(headers=headers)
    resp.content_type = "application/json"
    await resp.prepare(request)
    try:
        async for piece in pieces:
            await asyncio.wait_for(resp.write(piece), EOF_TIMEOUT_S)
        await asyncio.wait_for(resp.write_eof(), EOF_TIMEOUT_S)
    except (TimeoutError, ConnectionError):
        if request.transport is not None:
            request.transport.abort()
    return resp
