"""SSE frames of a streamed answer, pre-encoded: the per-token path only joins bytes.

A `Template` per kind of stream (chat or completions, model, usage) is built with json once;
a response's `StreamFormat` puts its id in. Usage is encoded without json (`usage_json`).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def frame(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


_MARK = "@@TOKEN@@"
_ID = "@@ID@@"
_USAGE = "@@USAGE@@"


class Template:
    """Encoded frames of one kind of stream (chat or completions, model, usage), id left open.

    Built with json once and cached per kind and second, so a request only substitutes its id.
    """

    def __init__(
        self, chat: bool, created: int, model: str, usage_null: bool, azure: bool = False
    ) -> None:
        self.chat = chat
        self.azure = azure
        base: dict[str, Any] = {
            "id": _ID,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
        }
        self.base = base
        self.usage_null = usage_null
        encoded = dumps(self._chunk(_MARK, None)).split(_MARK.encode())
        self.pre, self.post = b"data: " + encoded[0], encoded[1] + b"\n\n"
        self.role = frame(self._chunk(None, None, role=True)) if chat else b""
        if azure:  # Azure's first chunk: the prompt's filter results, no choices
            self.role = frame(AZURE_PROMPT_FILTER_CHUNK) + self.role
        finishes = ("stop", "length", "content_filter") if azure else ("stop", "length")
        self.finish = {f: frame(self._chunk(None, f)) for f in finishes}
        self.usage_pre, self.usage_post = (
            b"data: "
            + dumps({**base, "choices": [], "usage": _USAGE}).replace(
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
        if self.azure:
            choice["content_filter_results"] = azure_filter_results(
                text is not None, finish == "content_filter"
            )
        out = {**self.base, "choices": [choice]}
        if self.usage_null:
            out["usage"] = None
        return out


class StreamFormat:
    """The frames of one streaming response: a cached template with this response's id."""

    def __init__(self, tpl: Template, rid: str) -> None:
        rid_b = rid.encode()
        idb = _ID.encode()
        self.tpl = tpl
        self.rid = rid_b
        pre = tpl.pre.replace(idb, rid_b)
        post = tpl.post
        self.pre, self.post = pre, post

    def token_frame(self, token: bytes) -> bytes:
        return self.pre + token + self.post

    def role_frame(self) -> bytes:
        return self.tpl.role.replace(_ID.encode(), self.rid)

    def start_frames(self) -> bytes:
        """What goes before the first token: the role chunk (chat), Azure's filter chunk."""
        return self.role_frame()

    def end_frames(self, finish: str, usage: dict[str, Any] | None) -> bytes:
        tpl = self.tpl
        out = tpl.finish[finish]
        if usage is not None:
            out += tpl.usage_pre + usage_json(usage) + tpl.usage_post
        return out.replace(_ID.encode(), self.rid) + b"data: [DONE]\n\n"


AZURE_CATEGORIES = ("hate", "self_harm", "sexual", "violence")


def azure_filter_results(content: bool, filtered: bool) -> dict[str, Any]:
    """Azure's `content_filter_results` of a choice: the four categories on content, `{}`
    on the role and finish chunks, one category filtered when the filter cut the answer."""
    if not content and not filtered:
        return {}
    out: dict[str, Any] = {c: {"filtered": False, "severity": "safe"} for c in AZURE_CATEGORIES}
    if filtered:
        out["violence"] = {"filtered": True, "severity": "medium"}
    return out


AZURE_PROMPT_FILTER_CHUNK: dict[str, Any] = {
    "choices": [],
    "created": 0,
    "id": "",
    "model": "",
    "object": "",
    "prompt_filter_results": [
        {"prompt_index": 0, "content_filter_results": azure_filter_results(True, False)}
    ],
}


_USAGE_JSON = (
    '{{"prompt_tokens":{p},"completion_tokens":{c},"total_tokens":{t},'
    '"prompt_tokens_details":{{"cached_tokens":{k},"audio_tokens":0}},'
    '"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,'
    '"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}'
)


def usage_json(usage: dict[str, Any]) -> bytes:
    """`dumps(usage)` without json on the per-request path (same bytes)."""
    p, c = usage["prompt_tokens"], usage["completion_tokens"]
    k = usage["prompt_tokens_details"]["cached_tokens"]
    return _USAGE_JSON.format(p=p, c=c, t=p + c, k=k).encode()


def usage(prompt: int, completion: int, cached: int) -> dict[str, Any]:
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


class SseResponse(web.StreamResponse):
    """Holds the headers back until the first write, so they leave with the first token.

    aiohttp's StreamResponse sends its headers in a write of their own at prepare(); its
    Response already waits (this class attribute). One send per stream fewer, and the first
    token arrives in the same segment as the headers, as the module docstring promises.
    """

    _send_headers_immediately = False
