"""Anthropic's Messages API: `POST /v1/messages`, `x-api-key`, `anthropic-version`.

Streamed events: `message_start` (the message, its model and input usage: input tokens,
cache reads, cache writes), `content_block_start`, `content_block_delta` (`text_delta`
or `thinking_delta` carry content; `signature_delta` and `input_json_delta` do not),
`content_block_stop`, `message_delta` (`stop_reason` and the output tokens so far),
`message_stop`, `ping`, and `error` (an `overloaded_error` there is the outcome
`overloaded`, as a 529 is). Unknown event types are skipped, as Anthropic's versioning
policy asks of clients.

Usage is normalised to OpenAI's convention: Anthropic's `input_tokens` excludes cache
reads and writes, so the record's prompt is input + cache read + cache write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

from loadkit.apis.base import (
    END,
    NOTHING,
    Classified,
    Decoder,
    Endpoint,
    Frame,
    MalformedFrame,
    PlannedCall,
    ProviderApi,
    Usage,
    model_for,
    shown,
    split_system,
)

# The version every Messages API feature used here exists in (Anthropic's versioning docs).
DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # sent when the workload sets none: the API requires max_tokens
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "pause_turn",
    "refusal": "content_filter",
}
OVERLOADED = "overloaded"
# OpenAI-only body fields a call rebuilt for Anthropic (failover) leaves out: the Messages
# API answers 400 to fields it does not know.
OPENAI_ONLY = frozenset(
    {
        "stream_options",
        "n",
        "logprobs",
        "top_logprobs",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "response_format",
        "logit_bias",
        "user",
        "max_completion_tokens",
    }
)


def _int(x: Any) -> int:
    return int(x) if isinstance(x, int | float) and not isinstance(x, bool) else 0


class AnthropicDecoder(Decoder):
    """Messages API events; usage accumulates over `message_start` and `message_delta`."""

    def __init__(self) -> None:
        self.input = self.cache_read = self.cache_write = self.output = 0

    def _usage(self, u: Any) -> Usage:
        if isinstance(u, dict):
            if "input_tokens" in u:
                self.input = _int(u.get("input_tokens"))
            if "cache_read_input_tokens" in u:
                self.cache_read = _int(u.get("cache_read_input_tokens"))
            if "cache_creation_input_tokens" in u:
                self.cache_write = _int(u.get("cache_creation_input_tokens"))
            if "output_tokens" in u:
                self.output = _int(u.get("output_tokens"))
        prompt = self.input + self.cache_read + self.cache_write
        return Usage(prompt, self.output, self.cache_read, self.cache_write)

    def frame(self, data: bytes, event: str = "") -> Frame:
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise MalformedFrame(f"not JSON: {shown(data)}") from exc
        if not isinstance(obj, dict):
            raise MalformedFrame(f"not a JSON object: {shown(data)}")
        kind = obj.get("type") or event
        if kind == "content_block_delta":
            delta = obj.get("delta")
            if not isinstance(delta, dict):
                return NOTHING
            dtype = delta.get("type")
            text = delta.get("text") if dtype == "text_delta" else None
            if dtype == "thinking_delta":
                text = delta.get("thinking")
            if isinstance(text, str) and text:
                return Frame(text, True)
            return NOTHING
        if kind == "message_start":
            msg = obj.get("message")
            msg = msg if isinstance(msg, dict) else {}
            model = msg.get("model")
            return Frame(usage=self._usage(msg.get("usage")), model=model or "")
        if kind == "message_delta":
            delta = obj.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            finish = STOP_REASONS.get(reason, str(reason)[:40]) if reason else None
            return Frame(finish=finish, usage=self._usage(obj.get("usage")))
        if kind == "message_stop":
            return END
        if kind == "error":
            return error_frame(obj)
        return NOTHING  # ping, content_block_start/stop, and types added later

    def whole(self, obj: Any) -> Frame:
        if not isinstance(obj, dict):
            raise MalformedFrame("response is not a JSON object")
        if obj.get("type") == "error":
            return error_frame(obj)
        blocks = obj.get("content")
        if obj.get("type") != "message" or not isinstance(blocks, list):
            raise MalformedFrame(f"not a Messages API message: {shown(json.dumps(obj))}")
        text = "".join(
            str(b.get("text") or b.get("thinking") or "")
            for b in blocks
            if isinstance(b, dict) and b.get("type") in ("text", "thinking")
        )
        reason = obj.get("stop_reason")
        finish = STOP_REASONS.get(reason, str(reason)[:40]) if reason else ""
        model = obj.get("model") if isinstance(obj.get("model"), str) else ""
        return Frame(text, bool(text), finish, self._usage(obj.get("usage")), model, end=True)


def error_frame(obj: dict[str, Any]) -> Frame:
    err = obj.get("error")
    etype = err.get("type") if isinstance(err, dict) else ""
    msg = err.get("message") if isinstance(err, dict) else err
    outcome = OVERLOADED if etype == "overloaded_error" else "stream_error"
    return Frame(error=f"{etype or 'error'}: {msg}"[:300], error_outcome=outcome)


def error_type_and_message(body: bytes) -> tuple[str, str]:
    try:
        obj = json.loads(body)
    except ValueError:
        return "", ""
    err = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(err, dict):
        return "", ""
    return str(err.get("type") or ""), str(err.get("message") or "")[:200]


class AnthropicApi(ProviderApi):
    name: ClassVar[str] = "anthropic"
    title: ClassVar[str] = "Anthropic Messages API (x-api-key, anthropic-version)"
    kinds = ("chat",)
    key_header: ClassVar[str] = "x-api-key"
    retry_statuses: ClassVar[frozenset[int]] = frozenset({429, 529})

    def path(self, ep: Endpoint, kind: str) -> str:
        return "/v1/messages"

    def auth_headers(self, ep: Endpoint, key: str | None) -> dict[str, str]:
        out = {"anthropic-version": ep.api_version or DEFAULT_VERSION}
        if key:
            out["x-api-key"] = key
        return out

    def body(self, ep: Endpoint, call: PlannedCall) -> dict[str, Any]:
        system, messages = split_system(call)
        body: dict[str, Any] = {
            "model": model_for(ep, call),
            "max_tokens": int(call.max_tokens) if call.max_tokens else DEFAULT_MAX_TOKENS,
            "messages": messages,
        }
        if system:
            if call.shared_prefix:  # measured cache reads need a cache breakpoint
                body["system"] = [
                    {"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}
                ]
            else:
                body["system"] = system
        if call.stream:
            body["stream"] = True
        extra = {k: v for k, v in call.extra_body.items() if k not in OPENAI_ONLY}
        return {**body, **extra}

    def decoder(self, ep: Endpoint, call: PlannedCall) -> Decoder:
        return AnthropicDecoder()

    def classify(self, status: int, body: bytes, headers: Mapping[str, str]) -> Classified:
        etype, msg = error_type_and_message(body)
        text = f"HTTP {status}: {etype}: {msg}" if etype else f"HTTP {status}"
        if status == 529 or etype == "overloaded_error":
            return Classified(OVERLOADED, text)
        if status == 429:
            return Classified("rate_limited", text)
        return Classified("ok" if 200 <= status < 300 else "http_error", text)

    def models_path(self, ep: Endpoint) -> str | None:
        return "/v1/models"


API = AnthropicApi()
