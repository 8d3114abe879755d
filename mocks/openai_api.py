"""OpenAI-compatible handlers: request validation, errors in OpenAI's shape, SSE streaming.

Parameter checks are in `params`, the pre-encoded stream frames in `frames`.

Streaming responses send their headers with the first token (as hosted APIs do), so the
ground-truth headers `x-mock-queue-ms` / `x-mock-ttft-ms` carry real values. After that the
region's decode loop writes each token straight to the transport from pre-encoded parts
(`Sequence.head + token + Sequence.tail`, already framed as one HTTP chunk).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import HttpVersion11, web

from loadkit.tokens import estimate_tokens
from mocks import embeddings, frames, params
from mocks.engine import QueueFull, Sequence
from mocks.errors import ApiError, error_response, too_large
from mocks.frames import dumps as _dumps
from mocks.frames import usage as _usage
from mocks.frames import usage_json as _usage_json  # noqa: F401 (its test imports it from here)
from mocks.profile import ModelSpec
from mocks.region import Region
from mocks.words import TOKEN_BYTES, TOKEN_MASK, text_of

# Typed request-storage keys, as aiohttp 3.14 asks (string keys raise NotAppKeyWarning).
T0 = web.RequestKey("mock_t0", float)  # loop time the request arrived
RID = web.RequestKey("mock_rid", str)  # x-request-id of the response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RegionLookup = Callable[[web.Request], Region]

log = logging.getLogger("mocks")

EOF_TIMEOUT_S = 30.0  # a client that never reads the end of its stream is cut after this
SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"


# ------------------------------------------------------------------ middleware and signals


@web.middleware
async def openai_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stamp receipt time; every failure leaves as an OpenAI-shaped error."""
    request[T0] = asyncio.get_running_loop().time()
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.close:
            return await _answer_and_close(request, error_response(exc))
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status == 404:
            msg = (
                f"Unknown request URL: {request.method} {request.path}. Please check the URL "
                "for typos, or see the docs at https://platform.openai.com/docs/api-reference/."
            )
            return error_response(ApiError(404, msg, code="unknown_url"))
        if exc.status == 405:
            msg = f"Method {request.method} is not allowed for {request.path}."
            return error_response(ApiError(405, msg, code="method_not_allowed"))
        if exc.status == 413:
            return error_response(too_large(0))
        return error_response(ApiError(exc.status, exc.reason or "error"))
    except ConnectionError:
        raise  # the client is gone: nobody to answer
    except Exception:
        # A bug, not the client's fault: logged with its traceback, still OpenAI's shape.
        log.exception("unhandled error in %s %s", request.method, request.path)
        return await _answer_and_close(
            request, error_response(ApiError(500, SERVER_ERROR, "server_error", close=True))
        )


async def _answer_and_close(request: web.Request, resp: web.Response) -> web.Response:
    """Send `resp`, then close at once: no lingering read of a body that may never come."""
    try:
        await resp.prepare(request)
        await resp.write_eof()
    except ConnectionError:
        pass
    if request.protocol is not None:
        request.protocol.force_close()  # the write above is flushed before the close
    return resp


async def stamp_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`x-request-id` and `openai-processing-ms` on every response (on_response_prepare)."""
    h = response.headers
    if "x-request-id" not in h:
        rid = request.get(RID)
        if rid is None:
            seed = repr((id(request), time.perf_counter())).encode()
            rid = "req_" + hashlib.blake2b(seed, digest_size=16).hexdigest()
        h["x-request-id"] = rid
    if "openai-processing-ms" not in h:
        t0 = request.get(T0)
        ms = (asyncio.get_running_loop().time() - t0) * 1000 if t0 is not None else 0.0
        h["openai-processing-ms"] = str(round(ms))


# ------------------------------------------------------------------ request checks


def _check_region(region: Region) -> None:
    if region.down:
        raise ApiError(
            503,
            f"The server is temporarily unavailable (region {region.name} is "
            "down). Please try again later.",
            "server_error",
            code="service_unavailable",
        )


def _api_key(request: web.Request, region: Region) -> str:
    auth = request.headers.get("Authorization", "")
    key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    p = region.profile
    if p.require_api_key:
        if not key:
            raise ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key "
                "in an Authorization header using Bearer auth (i.e. Authorization: "
                "Bearer YOUR_KEY).",
            )
        if key not in p.api_keys:
            shown = f"{key[:3]}{'*' * max(0, len(key) - 7)}{key[-4:]}" if len(key) > 7 else "***"
            raise ApiError(
                401,
                f"Incorrect API key provided: {shown}. You can find your API key "
                "at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
    return key or "anonymous"


# ------------------------------------------------------------------ handlers


class OpenAIApi:
    """Handlers bound to a way of finding the request's region."""

    def __init__(self, lookup: RegionLookup, body_timeout_s: float = 30.0) -> None:
        self.lookup = lookup
        self.body_timeout_s = body_timeout_s
        self._templates: dict[tuple[bool, str, bool, int], frames.Template] = {}

    def add_routes(self, app: web.Application, prefix: str = "") -> None:
        app.router.add_post(f"{prefix}/v1/chat/completions", self.chat)
        app.router.add_post(f"{prefix}/v1/completions", self.completions)
        app.router.add_post(f"{prefix}/v1/embeddings", self.embeddings)
        app.router.add_get(f"{prefix}/v1/models", self.models)
        app.router.add_get(f"{prefix}/v1/models/{{model:.+}}", self.model)

    async def models(self, request: web.Request) -> web.Response:
        region = self.lookup(request)
        _check_region(region)
        _api_key(request, region)
        return web.json_response(
            {"object": "list", "data": [_model_obj(m) for m in region.profile.models]}
        )

    async def model(self, request: web.Request) -> web.Response:
        region = self.lookup(request)
        _check_region(region)
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
        return await self._generate(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _generate(self, request: web.Request, chat: bool) -> web.StreamResponse:
        region = self.lookup(request)
        _check_region(region)
        key = _api_key(request, region)
        data, body = await params.read_json(
            request, region.profile.max_body_bytes, self.body_timeout_s
        )
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
        plan = region.plan(body)
        room = max(1, region.profile.context_length - prompt_tokens)
        natural = params.natural_length(data, plan.natural_tokens, room)
        n_out = min(natural, max_tokens or room, room)
        finish = "stop" if n_out == natural else "length"
        rl_headers = params.rate_limit(region, key, spec.id, prompt_tokens + n_out)
        cached = region.cache.lookup_and_insert(text, prompt_tokens)
        seq = Sequence(
            prompt_tokens=prompt_tokens,
            cached_tokens=cached,
            n_out=n_out,
            prefill_s=region.prefill_seconds(prompt_tokens - cached, plan.prefill_factor),
            word0=plan.word0,
            transport=request.transport,
        )
        uid = region.next_id()
        request[RID] = f"req_{uid}"
        try:
            region.engine.submit(seq)
        except QueueFull as exc:
            raise params.queue_full(exc, rl_headers) from None
        try:
            assert seq.first is not None and seq.done is not None
            if not await seq.first:
                return web.Response(status=503)  # the client went away or the region went down
            # Stamped as the first token goes out, so a late wake-up of the mock is part
            # of the truth and not counted against the client measuring it.
            ttft_s = asyncio.get_running_loop().time() - request[T0]
            headers = {
                **rl_headers,
                "x-mock-queue-ms": f"{seq.queue_s * 1000:.3f}",
                "x-mock-ttft-ms": f"{ttft_s * 1000:.3f}",
                "x-mock-region": region.name,
                "openai-model": spec.id,
            }
            usage = _usage(prompt_tokens, n_out, cached)
            rid = f"{'chatcmpl' if chat else 'cmpl'}-{uid}"
            created = int(time.time())
            if stream:
                return await self._stream(
                    request,
                    region,
                    seq,
                    headers,
                    chat,
                    rid,
                    created,
                    spec.id,
                    finish,
                    usage if include_usage else None,
                    include_usage,
                )
            region.engine.begin_decode(seq)
            if not await seq.done:
                return web.Response(status=503)
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
            body = {
                "id": rid,
                "object": obj,
                "created": created,
                "model": spec.id,
                "system_fingerprint": "fp_mock",
                "choices": [choice],
                "usage": usage,
            }
            return web.Response(body=_dumps(body), content_type="application/json", headers=headers)
        finally:
            region.engine.release(seq)

    async def _stream(
        self,
        request: web.Request,
        region: Region,
        seq: Sequence,
        headers: dict[str, str],
        chat: bool,
        rid: str,
        created: int,
        model: str,
        finish: str,
        usage: dict[str, Any] | None,
        usage_null: bool,
    ) -> web.StreamResponse:
        key = (chat, model, usage_null, created)
        tpl = self._templates.get(key)
        if tpl is None:
            if len(self._templates) > 64:
                self._templates.clear()
            tpl = self._templates[key] = frames.Template(chat, created, model, usage_null)
        fmt = frames.StreamFormat(tpl, rid)
        resp = frames.SseResponse(
            headers={
                **headers,
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        # HTTP/1.0 has no chunked encoding: the stream is close-delimited there (aiohttp
        # closes after it), and the decode loop writes bare frames instead of chunks.
        chunked = request.version >= HttpVersion11
        if chunked:
            resp.enable_chunked_encoding()
        await resp.prepare(request)
        end = fmt.end_frames(finish, usage)
        first = fmt.role_frame() + fmt.token_frame(TOKEN_BYTES[seq.word0 & TOKEN_MASK])
        # The decode loop writes tokens 2..n-1 (no `on_final`); the last token leaves here
        # with the stream's end, so finish/usage/[DONE] and the chunked terminator share one
        # write (one send instead of two per stream).
        seq.head, seq.tail = (fmt.head, fmt.tail) if chunked else (fmt.pre, fmt.post)
        try:
            if seq.n_out <= 1:  # headers, the only token and the end in one segment
                await resp.write_eof(first + end)
                region.engine.begin_decode(seq)
                return resp
            await resp.write(first)  # the headers and the first token, in one segment
        except ConnectionError:
            return resp
        region.engine.begin_decode(seq)
        ok = await seq.done  # type: ignore[misc]
        if not ok:
            if request.transport is not None:
                request.transport.abort()  # cut mid-stream: no clean chunked end
            return resp
        last = fmt.token_frame(TOKEN_BYTES[(seq.word0 + seq.n_out - 1) & TOKEN_MASK]) + end
        tr = request.transport
        try:
            if tr is not None and tr.get_write_buffer_size() == 0:
                await resp.write_eof(last)  # nothing queued: it cannot block
            else:  # a slow reader: do not wait on it forever
                await asyncio.wait_for(resp.write_eof(last), EOF_TIMEOUT_S)
        except (TimeoutError, ConnectionError):
            if tr is not None:
                tr.abort()
        return resp

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        region = self.lookup(request)
        _check_region(region)
        key = _api_key(request, region)
        data, _ = await params.read_json(
            request, region.profile.max_body_bytes, self.body_timeout_s
        )
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
        rl_headers = params.rate_limit(region, key, spec.id, tokens)
        seq = Sequence(tokens, 0, 0, region.prefill_seconds(tokens, 1.0), 0, request.transport)
        request[RID] = f"req_{region.next_id()}"
        try:
            region.engine.submit(seq)
        except QueueFull as exc:
            raise params.queue_full(exc, rl_headers) from None
        try:
            if not await seq.first:  # type: ignore[misc]
                return web.Response(status=503)
            region.engine.finish_prefill_only(seq)
            headers = {
                **rl_headers,
                "x-mock-queue-ms": f"{seq.queue_s * 1000:.3f}",
                "x-mock-region": region.name,
                "openai-model": spec.id,
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
