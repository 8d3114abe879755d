"""Provider-realistic error responses and in-stream frames the proxy injects."""

from __future__ import annotations

import json
import math

# OpenAI's own wording where it has one; 529 is Anthropic's "overloaded" (also sent by some
# gateways), in OpenAI's error shape so OpenAI clients parse it.
_MESSAGES: dict[int, tuple[str, str, str | None]] = {
    429: ("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", "service_unavailable"),
    504: ("Gateway timeout.", "server_error", None),
    529: ("Overloaded", "overloaded_error", "overloaded"),
}


def _go_duration(ms: float) -> str:
    """OpenAI writes x-ratelimit-reset-* like Go durations: `644ms`, `2s`, `6m0s`."""
    if ms < 1000:
        return f"{round(ms)}ms"
    s = ms / 1000.0
    if s < 60:
        return f"{s:.3g}s"
    return f"{int(s // 60)}m{int(s % 60)}s"


def openai_error(
    message: str, etype: str, param: str | None = None, code: str | None = None
) -> bytes:
    """An error body in OpenAI's shape, which every OpenAI client parses."""
    body = {"error": {"message": message, "type": etype, "param": param, "code": code}}
    return json.dumps(body).encode()


def error_response(
    status: int, fault_id: str, retry_after_ms: float | None, model: str = ""
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of an injected HTTP error."""
    message, etype, code = _MESSAGES.get(status, ("Injected error.", "server_error", None))
    headers = {"content-type": "application/json", "x-loadkit-fault": fault_id}
    if status == 429:
        wait_ms = retry_after_ms if retry_after_ms is not None else 1000.0
        where = f" for {model}" if model else ""
        message = (
            f"Rate limit reached{where} in organization org-loadkit-chaos on requests per min "
            f"(RPM): Limit 500, Used 500, Requested 1. Please try again in "
            f"{_go_duration(wait_ms)}. (injected by loadkit chaos)"
        )
        headers.update(
            {
                "x-ratelimit-limit-requests": "500",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": _go_duration(wait_ms),
                "x-ratelimit-limit-tokens": "200000",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": _go_duration(wait_ms),
            }
        )
        retry_after_ms = wait_ms
    if retry_after_ms is not None:
        headers["retry-after"] = str(max(1, math.ceil(retry_after_ms / 1000.0)))
        headers["retry-after-ms"] = str(round(retry_after_ms))
    return openai_error(message, etype, None, code), headers


def error_frame(fault_id: str, api: str = "openai", framing: str = "sse") -> bytes | None:
    """An in-stream error event in the stream's own API: OpenAI's `data: {"error": ...}`,
    Anthropic's `event: error` (`api_error`); None where the framing has none."""
    if framing != "sse":
        return None
    if api == "anthropic":
        err = {
            "type": "error",
            "error": {
                "type": "api_error",
                "message": "Internal server error",
                "loadkit_fault": fault_id,
            },
        }
        return b"event: error\ndata: " + json.dumps(err).encode() + b"\n\n"
    body = {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "server_error",
            "param": None,
            "code": "stream_error",
            "loadkit_fault": fault_id,
        }
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


MALFORMED_FRAME = b'data: {"id": "chatcmpl-chaos", "object": "chat.completion.chunk", "choi\n\n'


def overloaded(api: str, fault_id: str) -> bytes:
    """A 529 body: Anthropic's `overloaded_error`, else the same in OpenAI's shape."""
    if api == "anthropic":
        err = {"type": "overloaded_error", "message": "Overloaded", "loadkit_fault": fault_id}
        return json.dumps({"type": "error", "error": err}).encode()
    return openai_error("Overloaded", "overloaded_error", None, "overloaded")
