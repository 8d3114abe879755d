"""A team's own RAG copilot service, `POST /api/ask`, on the region's engine.

The body (JSON object):

| field | type | required | meaning |
|---|---|---|---|
| `question` | string, non-empty | yes | the user's question |
| `session_id` | string | no | echoed back (header `x-session-id`, and in the answer) |
| `history` | list of `{"role": "user"/"assistant", "content": str}` | no | earlier turns |
| `max_tokens` | integer >= 1 | no | caps the answer (default: the answer's natural length) |
| `stream` | `"text"`, `"sse"`, `"ndjson"` or `"json"` | no (default `"json"`) | the framing |

First a retrieval step: `retrieval_ms + retrieval_ms_per_request x (requests in flight in
the region: retrieving, queued or generating)`, x `latency_scale`; it adds
`retrieved_tokens` of passages to the prompt. Then the engine generates as for every
other route (queue, prefill, decode, prefix cache). Answers:

- `text`: `text/plain; charset=utf-8`, chunked, each token written as it is decoded;
- `sse`: `text/event-stream` with `event: sources` (`{"sources": [ids]}`) first, then one
  `event: token` per token (`{"text": "..."}`), then `event: done` (`{"finish_reason",
  "usage", "session_id"}`);
- `ndjson`: `application/x-ndjson`, one JSON object a line: `{"sources": [ids]}`, then
  `{"text": "..."}` per token, then `{"done": true, "finish_reason", "usage", "session_id"}`;
- `json`: `{"answer", "session_id", "sources", "finish_reason", "usage"}` at the end.

`usage` is `{"prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens"}`;
`finish_reason` is `stop` or `length`. Errors are `{"error": {"code", "message"}}`: 400
`bad_request` for a bad body, 503 `overloaded` (with `retry-after`) when the engine's queue
is full, 503 `unavailable` when the region is down.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from typing import Any

from aiohttp import web

from loadkit.tokens import estimate_tokens
from mocks import generation, params
from mocks.body import INVALID_JSON
from mocks.common import Dialect, RegionLookup, bind, check_region, ended
from mocks.engine import QueueFull
from mocks.errors import ApiError
from mocks.region import Region
from mocks.words import TOKEN_COUNT, text_of

SYSTEM = (
    "You are the support copilot of Example Corp. Answer from the passages below; if they "
    "do not hold the answer, say so. Be brief and cite the passage ids you used."
)
FRAMINGS = ("text", "sse", "ndjson", "json")
STATUS_CODES = {
    400: "bad_request",
    404: "not_found",
    408: "timeout",
    413: "too_large",
    415: "unsupported_encoding",
    503: "unavailable",
}
TOKEN_PRE = b'event: token\ndata: {"text":"'
TOKEN_POST = b'"}\n\n'


class CopilotDialect(Dialect):
    name = "copilot"

    def error(self, request: web.Request, exc: ApiError) -> web.Response:
        code = exc.code if exc.code in ("overloaded",) else None
        code = code or STATUS_CODES.get(exc.status, "error")
        message = exc.message
        if message == INVALID_JSON:
            message = "The body must be a JSON object."
        if exc.status == 503 and code == "unavailable":
            message = "The copilot is temporarily unavailable. Please try again later."
        body = {"error": {"code": code, "message": message}}
        resp = web.json_response(body, status=exc.status, headers=exc.headers)
        if exc.close:
            resp.force_close()
        return resp


COPILOT = CopilotDialect()


def _bad(message: str) -> ApiError:
    return ApiError(400, message, code="bad_request")


def parse(data: dict[str, Any]) -> tuple[str, str | None, list[str], int | None, str]:
    """(question, session_id, history texts, max_tokens, framing), or a 400."""
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        raise _bad("'question' is required: a non-empty string.")
    session = data.get("session_id")
    if session is not None and not isinstance(session, str):
        raise _bad("'session_id' must be a string.")
    history: list[str] = []
    turns = data.get("history") or []
    if not isinstance(turns, list):
        raise _bad("'history' must be a list of {role, content} turns.")
    for i, turn in enumerate(turns):
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ("user", "assistant")
            or not isinstance(turn.get("content"), str)
        ):
            raise _bad(f"'history[{i}]' must be {{'role': 'user' | 'assistant', 'content': str}}.")
        history.append(turn["content"])
    max_tokens = data.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise _bad("'max_tokens' must be an integer >= 1.")
    framing = data.get("stream", "json")
    if framing not in FRAMINGS:
        raise _bad("'stream' must be one of 'text', 'sse', 'ndjson' or 'json'.")
    return question, session, history, max_tokens, framing


def _passages(question: str, tokens: int) -> tuple[list[str], str]:
    """Retrieved passage ids and text, determined by the question."""
    digest = hashlib.blake2b(question.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    seed = int.from_bytes(digest, "little")
    ids = [f"doc-{(seed >> (8 * i)) & 0xFFFF:04x}" for i in range(3)]
    return ids, text_of(seed % TOKEN_COUNT, tokens)


class CopilotApi:
    """`POST /api/ask` bound to a way of finding the request's region."""

    def __init__(self, lookup: RegionLookup, body_timeout_s: float = 30.0) -> None:
        self.lookup = lookup
        self.body_timeout_s = body_timeout_s
        self._retrieving: dict[str, int] = {}

    def add_routes(self, app: web.Application, prefix: str = "") -> None:
        app.router.add_post(f"{prefix}/api/ask", bind(COPILOT, self.ask))

    async def _retrieve(self, region: Region) -> float:
        """The retrieval step's delay (slower the more requests are in flight); seconds."""
        p = region.profile
        engine = region.engine
        busy = self._retrieving.get(region.name, 0)
        in_flight = busy + engine.n_running + len(engine.waiting)
        delay = (p.retrieval_ms + p.retrieval_ms_per_request * in_flight) * p.latency_scale / 1000
        self._retrieving[region.name] = busy + 1
        try:
            await asyncio.sleep(delay)
        finally:
            self._retrieving[region.name] -= 1
        return delay

    async def ask(self, request: web.Request) -> web.StreamResponse:
        region = self.lookup(request)
        check_region(region)
        data, body = await params.read_json(
            request, region.profile.max_body_bytes, self.body_timeout_s
        )
        question, session, history, max_tokens, framing = parse(data)
        delay = await self._retrieve(region)
        check_region(region)  # it may have gone down while retrieving
        sources, passages = _passages(question, region.profile.retrieved_tokens)
        parts = [SYSTEM, passages, *history, question]
        prompt_tokens = sum(estimate_tokens(p) for p in parts)
        ctx = region.profile.context_length
        if prompt_tokens + (max_tokens or 0) > ctx:
            raise _bad(
                f"The question and its context ({prompt_tokens} tokens) do not fit the "
                f"model's {ctx}-token context with max_tokens {max_tokens or 0}."
            )
        plan = region.plan(body)
        n_out, natural = generation.answer_length(region, data, plan, prompt_tokens, max_tokens)
        finish = "stop" if natural else "length"
        cached = region.cache.lookup_and_insert("\x1e".join(parts), prompt_tokens)
        seq = generation.sequence(request, region, prompt_tokens, cached, n_out, plan)
        generation.admit(request, region, seq, _overloaded)
        try:
            truth = await generation.first_token(request, region, seq)
            if truth is None:
                return ended(region)  # the client went away or the region went down
            headers = {**truth, "x-mock-retrieval-ms": f"{delay * 1000:.3f}"}
            if session is not None:
                headers["x-session-id"] = session
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": n_out,
                "total_tokens": prompt_tokens + n_out,
                "cached_tokens": cached,
            }
            if framing == "text":
                ctype = "text/plain; charset=utf-8"
                return await generation.stream(
                    request, region, seq, headers, ctype, b"", b"", b"", b""
                )
            done = {"finish_reason": finish, "usage": usage, "session_id": session}
            if framing == "ndjson":
                return await generation.stream(
                    request,
                    region,
                    seq,
                    headers,
                    "application/x-ndjson",
                    _line({"sources": sources}),
                    b'{"text":"',
                    b'"}\n',
                    _line({"done": True, **done}),
                )
            if framing == "sse":
                start = _event("sources", {"sources": sources})
                return await generation.stream(
                    request,
                    region,
                    seq,
                    headers,
                    "text/event-stream; charset=utf-8",
                    start,
                    TOKEN_PRE,
                    TOKEN_POST,
                    _event("done", done),
                )
            if not await generation.whole(region, seq):
                return ended(region)
            answer = {
                "answer": text_of(seq.word0, n_out),
                "session_id": session,
                "sources": sources,
                "finish_reason": finish,
                "usage": usage,
            }
            return web.json_response(answer, headers=headers)
        finally:
            region.engine.release(seq)


def _overloaded(exc: QueueFull) -> ApiError:
    return ApiError(
        503,
        "The copilot is overloaded; please retry shortly.",
        code="overloaded",
        headers={"retry-after": str(max(1, math.ceil(exc.retry_after_s)))},
    )


def _event(name: str, obj: dict[str, Any]) -> bytes:
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return f"event: {name}\ndata: {data}\n\n".encode()


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
