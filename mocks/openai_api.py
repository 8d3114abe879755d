"""OpenAI-compatible handlers: request validation, errors in OpenAI's shape, SSE streaming.

Streaming responses send their headers with the first token (as hosted APIs do), so the
ground-truth headers `x-mock-queue-ms` / `x-mock-ttft-ms` carry real values. After that the
region's decode loop writes each token straight to the transport from pre-encoded parts
(`Sequence.head + token + Sequence.tail`, already framed as one HTTP chunk).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import HttpVersion11, web

from loadkit.tokens import estimate_tokens
from mocks import embeddings
from mocks.body import parse_object, read_body
from mocks.engine import QueueFull, Sequence
from mocks.errors import ApiError, error_response, too_large
from mocks.profile import ModelSpec
from mocks.ratelimit import go_duration
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


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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


async def _read_json(
    request: web.Request, limit: int, deadline_s: float
) -> tuple[dict[str, Any], bytes]:
    """The parsed JSON object and the decoded body (the seeded draws hash its bytes)."""
    body = await read_body(request, limit, deadline_s)
    return parse_object(body), body


def _type_name(v: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "an array",
        dict: "an object",
        type(None): "null",
    }.get(type(v), type(v).__name__)


def _invalid_type(param: str, expected: str, got: Any) -> ApiError:
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(got)} instead.",
        param=param,
        code="invalid_type",
    )


def _model(data: dict[str, Any], region: Region, kind: str) -> ModelSpec:
    model = data.get("model")
    if model is None:
        raise ApiError(
            400,
            "you must provide a model parameter",
            param="model",
            code="missing_required_parameter",
        )
    if not isinstance(model, str):
        raise _invalid_type("model", "a string", model)
    spec = region.profile.model(model)
    if spec is None:
        raise ApiError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    if spec.kind != kind:
        what = "an embedding" if kind == "embedding" else "a chat/completions"
        raise ApiError(
            400,
            f"The model `{model}` is not {what} model.",
            param="model",
            code="model_not_supported",
        )
    return spec


def _messages_text(data: dict[str, Any]) -> str:
    if "messages" not in data:
        raise ApiError(
            400,
            "Missing required parameter: 'messages'.",
            param="messages",
            code="missing_required_parameter",
        )
    messages = data["messages"]
    if not isinstance(messages, list):
        raise _invalid_type("messages", "an array", messages)
    if not messages:
        raise ApiError(
            400,
            "Invalid 'messages': empty array. Expected an array with minimum "
            "length 1, but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    parts: list[str] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _invalid_type(where, "an object", msg)
        role = msg.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool", "function"):
            raise ApiError(
                400,
                f"Invalid value for '{where}.role': expected one of 'system', "
                "'developer', 'user', 'assistant', 'tool', 'function'.",
                param=f"{where}.role",
                code="invalid_value",
            )
        content = msg.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict):
                    raise _invalid_type(f"{where}.content[{j}]", "an object", part)
                text = part.get("text")
                if part.get("type") == "text" and not isinstance(text, str):
                    raise _invalid_type(f"{where}.content[{j}].text", "a string", text)
                if isinstance(text, str):
                    parts.append(text)
        elif content is None and role in ("assistant", "function"):
            continue
        else:
            raise _invalid_type(f"{where}.content", "a string or array", content)
    return "\x1e".join(parts)


def _max_tokens(data: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        v = data.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise _invalid_type(name, "an integer", v)
        if v < 1:
            raise ApiError(
                400,
                f"Invalid '{name}': integer below minimum value. Expected a "
                f"value >= 1, but got {v} instead.",
                param=name,
                code="integer_below_min_value",
            )
        return v
    return None


def _flag(data: dict[str, Any], name: str) -> bool:
    v = data.get(name, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _invalid_type(name, "a boolean", v)
    return v


def _include_usage(data: dict[str, Any]) -> bool:
    opts = data.get("stream_options")
    if opts is None:
        return False
    if not isinstance(opts, dict):
        raise _invalid_type("stream_options", "an object", opts)
    return bool(opts.get("include_usage", False))


def _natural_length(data: dict[str, Any], natural: int, room: int) -> int:
    """Where the answer would end by itself: `ignore_eos: true` never ends it (vLLM,
    llama.cpp), `min_tokens: N` not before N tokens (vLLM)."""
    if data.get("ignore_eos") is True:
        return room + 1
    floor = data.get("min_tokens")
    if isinstance(floor, int) and not isinstance(floor, bool) and floor > natural:
        return floor
    return natural


def _context_check(region: Region, prompt: int, max_tokens: int | None, what: str) -> None:
    ctx = region.profile.context_length
    if prompt + (max_tokens or 0) <= ctx:
        return
    if max_tokens and prompt <= ctx:
        msg = (
            f"This model's maximum context length is {ctx} tokens. However, you requested "
            f"{prompt + max_tokens} tokens ({prompt} in the {what}, {max_tokens} in the "
            "completion). Please reduce the length of the messages or completion."
        )
    else:
        msg = (
            f"This model's maximum context length is {ctx} tokens. However, your {what} "
            f"resulted in {prompt} tokens. Please reduce the length of the {what}."
        )
    raise ApiError(
        400,
        msg,
        param="messages" if what == "messages" else "prompt",
        code="context_length_exceeded",
    )


def _rate_limit(region: Region, key: str, model: str, tokens: int) -> dict[str, str]:
    loop_time = asyncio.get_running_loop().time()
    d = region.limiter.check(key, tokens, loop_time)
    if d.allowed:
        return d.headers
    unit = "requests per min (RPM)" if d.kind == "requests" else "tokens per min (TPM)"
    wait = d.retry_after_s
    if wait == float("inf"):
        msg = (
            f"Request too large for {model} in organization org-mock on {unit}: Limit "
            f"{d.limit}, Requested {d.requested}. The input or output tokens must be reduced "
            "in order to run successfully."
        )
        raise ApiError(429, msg, d.kind, code="rate_limit_exceeded", headers=d.headers)
    headers = dict(d.headers)
    headers["retry-after"] = str(max(1, int(-(-wait // 1))))
    headers["retry-after-ms"] = str(max(1, round(wait * 1000)))
    msg = (
        f"Rate limit reached for {model} in organization org-mock on {unit}: Limit "
        f"{d.limit}, Used {d.used}, Requested {d.requested}. Please try again in "
        f"{go_duration(wait)}. Visit https://platform.openai.com/account/rate-limits to "
        "learn more."
    )
    raise ApiError(429, msg, d.kind, code="rate_limit_exceeded", headers=headers)


def _queue_full(exc: QueueFull, headers: dict[str, str]) -> ApiError:
    h = dict(headers)
    h["retry-after"] = str(max(1, int(-(-exc.retry_after_s // 1))))
    h["retry-after-ms"] = str(max(1, round(exc.retry_after_s * 1000)))
    return ApiError(
        429,
        "The server is currently overloaded with other requests (waiting "
        f"queue full). Please try again in {go_duration(exc.retry_after_s)}.",
        "server_error",
        code="server_overloaded",
        headers=h,
    )


# ------------------------------------------------------------------ stream framing


def _frame(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


_MARK = "@@TOKEN@@"
_ID = "@@ID@@"
_USAGE = "@@USAGE@@"


class _Template:
    """Encoded frames of one kind of stream (chat or completions, model, usage), id left open.

    Built with json once and cached per kind and second, so a request only substitutes its id.
    """

    def __init__(self, chat: bool, created: int, model: str, usage_null: bool) -> None:
        self.chat = chat
        base: dict[str, Any] = {
            "id": _ID,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
        }
        self.base = base
        self.usage_null = usage_null
        encoded = _dumps(self._chunk(_MARK, None)).split(_MARK.encode())
        self.pre, self.post = b"data: " + encoded[0], encoded[1] + b"\n\n"
        self.role = _frame(self._chunk(None, None, role=True)) if chat else b""
        self.finish = {f: _frame(self._chunk(None, f)) for f in ("stop", "length")}
        self.usage_pre, self.usage_post = (
            b"data: "
            + _dumps({**base, "choices": [], "usage": _USAGE}).replace(
                f'"{_USAGE}"'.encode(), b"\x00"
            )
        ).split(b"\x00")
        self.usage_post += b"\n\n"

    def _chunk(self, text: str | None, finish: str | None, role: bool = False) -> dict[str, Any]:
        if self.chat:
            delta: dict[str, Any] = {}
            if role:
                delta = {"role": "assistant", "content": "", "refusal": None}
            elif text is not None:
                delta = {"content": text}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"text": text or "", "index": 0, "logprobs": None, "finish_reason": finish}
        out = {**self.base, "choices": [choice]}
        if self.usage_null:
            out["usage"] = None
        return out


class _Format:
    """The frames of one streaming response: a cached template with this response's id."""

    def __init__(self, tpl: _Template, rid: str) -> None:
        rid_b = rid.encode()
        idb = _ID.encode()
        self.tpl = tpl
        self.rid = rid_b
        pre = tpl.pre.replace(idb, rid_b)
        post = tpl.post
        self.pre, self.post = pre, post
        size = len(pre) + 4 + len(post)
        self.head = b"%x\r\n" % size + pre  # every token is exactly 4 ASCII bytes
        self.tail = post + b"\r\n"

    def token_frame(self, token: bytes) -> bytes:
        return self.pre + token + self.post

    def role_frame(self) -> bytes:
        return self.tpl.role.replace(_ID.encode(), self.rid)

    def end_frames(self, finish: str, usage: dict[str, Any] | None) -> bytes:
        tpl = self.tpl
        out = tpl.finish[finish]
        if usage is not None:
            out += tpl.usage_pre + _usage_json(usage) + tpl.usage_post
        return out.replace(_ID.encode(), self.rid) + b"data: [DONE]\n\n"


_USAGE_JSON = (
    '{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{t},'
    '"prompt_tokens_details":{{"cached_tokens":{k},"audio_tokens":0}},'
    '"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,'
    '"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}'
)


def _usage_json(usage: dict[str, Any]) -> bytes:
    """`_dumps(usage)` without json on the per-request path (same bytes)."""
    p, c = usage["prompt_tokens"], usage["completion_tokens"]
    k = usage["prompt_tokens_details"]["cached_tokens"]
    return _USAGE_JSON.format(p=p, c=c, t=p + c, k=k).encode()


def _usage(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


class _SseResponse(web.StreamResponse):
    """Holds the headers back until the first write, so they leave with the first token.

    aiohttp's StreamResponse sends its headers in a write of their own at prepare(); its
    Response already waits (this class attribute). One send per stream fewer, and the first
    token arrives in the same segment as the headers, as the module docstring promises.
    """

    _send_headers_immediately = False


# ------------------------------------------------------------------ handlers


class OpenAIApi:
    """Handlers bound to a way of finding the request's region."""

    def __init__(self, lookup: RegionLookup, body_timeout_s: float = 30.0) -> None:
        self.lookup = lookup
        self.body_timeout_s = body_timeout_s
        self._templates: dict[tuple[bool, str, bool, int], _Template] = {}

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
        data, body = await _read_json(request, region.profile.max_body_bytes, self.body_timeout_s)
        spec = _model(data, region, "chat")
        if chat:
            text = _messages_text(data)
            prompt_tokens = sum(estimate_tokens(p) for p in text.split("\x1e"))
        else:
            text, prompt_tokens = _prompt_text(data)
        max_tokens = _max_tokens(data)
        stream = _flag(data, "stream")
        include_usage = stream and _include_usage(data)
        _context_check(region, prompt_tokens, max_tokens, "messages" if chat else "prompt")
        plan = region.plan(body)
        room = max(1, region.profile.context_length - prompt_tokens)
        natural = _natural_length(data, plan.natural_tokens, room)
        n_out = min(natural, max_tokens or room, room)
        finish = "stop" if n_out == natural else "length"
        rl_headers = _rate_limit(region, key, spec.id, prompt_tokens + n_out)
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
            raise _queue_full(exc, rl_headers) from None
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
            tpl = self._templates[key] = _Template(chat, created, model, usage_null)
        fmt = _Format(tpl, rid)
        resp = _SseResponse(
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
        data, _ = await _read_json(request, region.profile.max_body_bytes, self.body_timeout_s)
        spec = _model(data, region, "embedding")
        texts = _embedding_inputs(data)
        tokens = sum(estimate_tokens(t) if isinstance(t, str) else len(t) for t in texts)
        dims = data.get("dimensions", spec.dimensions)
        if isinstance(dims, bool) or not isinstance(dims, int):
            raise _invalid_type("dimensions", "an integer", dims)
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
                _context_check(region, estimate_tokens(t), None, "input")
            else:
                _context_check(region, len(t), None, "input")
        rl_headers = _rate_limit(region, key, spec.id, tokens)
        seq = Sequence(tokens, 0, 0, region.prefill_seconds(tokens, 1.0), 0, request.transport)
        request[RID] = f"req_{region.next_id()}"
        try:
            region.engine.submit(seq)
        except QueueFull as exc:
            raise _queue_full(exc, rl_headers) from None
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


def _prompt_text(data: dict[str, Any]) -> tuple[str, int]:
    if "prompt" not in data:
        raise ApiError(
            400,
            "Missing required parameter: 'prompt'.",
            param="prompt",
            code="missing_required_parameter",
        )
    prompt = data["prompt"]
    if isinstance(prompt, str):
        return prompt, estimate_tokens(prompt)
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return "\x1e".join(prompt), sum(estimate_tokens(p) for p in prompt)
        if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
            return " ".join(map(str, prompt)), len(prompt)
    raise _invalid_type("prompt", "a string or array of strings or tokens", prompt)


def _embedding_inputs(data: dict[str, Any]) -> list[str | list[int]]:
    if "input" not in data:
        raise ApiError(
            400,
            "Missing required parameter: 'input'.",
            param="input",
            code="missing_required_parameter",
        )
    inp = data["input"]
    if isinstance(inp, str):
        return [inp]
    if isinstance(inp, list) and inp:
        if all(isinstance(x, str) for x in inp):
            return list(inp)
        if all(isinstance(x, int) and not isinstance(x, bool) for x in inp):
            return [list(inp)]
        if all(isinstance(x, list) and all(isinstance(y, int) for y in x) for x in inp):
            return [list(x) for x in inp]
    raise _invalid_type("input", "a string or array of strings or tokens", inp)


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
