"""Request parameters of the OpenAI API, read and checked as OpenAI checks them.

Every problem is an `ApiError` worded like OpenAI's own (param, code), so a client's error
handling meets what a hosted API would send it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from loadkit.tokens import estimate_tokens
from mocks.body import parse_object, read_body
from mocks.engine import QueueFull
from mocks.errors import ApiError
from mocks.profile import ModelSpec
from mocks.ratelimit import go_duration
from mocks.region import Region


def _missing(param: str) -> ApiError:
    return ApiError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


async def read_json(
    request: web.Request, limit: int, deadline_s: float
) -> tuple[dict[str, Any], bytes]:
    """The parsed JSON object and the decoded body (the seeded draws hash its bytes)."""
    body = await read_body(request, limit, deadline_s)
    return parse_object(body), body


def type_name(v: Any) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "an array",
        dict: "an object",
        type(None): "null",
    }.get(type(v), type(v).__name__)


def invalid_type(param: str, expected: str, got: Any) -> ApiError:
    return ApiError(
        400,
        f"Invalid type for '{param}': expected {expected}, but got {type_name(got)} instead.",
        param=param,
        code="invalid_type",
    )


def model_spec(data: dict[str, Any], region: Region, kind: str) -> ModelSpec:
    model = data.get("model")
    if model is None:
        raise ApiError(
            400,
            "you must provide a model parameter",
            param="model",
            code="missing_required_parameter",
        )
    if not isinstance(model, str):
        raise invalid_type("model", "a string", model)
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


def messages_text(data: dict[str, Any]) -> str:
    if "messages" not in data:
        raise _missing("messages")
    messages = data["messages"]
    if not isinstance(messages, list):
        raise invalid_type("messages", "an array", messages)
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
            raise invalid_type(where, "an object", msg)
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
                    raise invalid_type(f"{where}.content[{j}]", "an object", part)
                text = part.get("text")
                if part.get("type") == "text" and not isinstance(text, str):
                    raise invalid_type(f"{where}.content[{j}].text", "a string", text)
                if isinstance(text, str):
                    parts.append(text)
        elif content is None and role in ("assistant", "function"):
            continue
        else:
            raise invalid_type(f"{where}.content", "a string or array", content)
    return "\x1e".join(parts)


def max_tokens(data: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        v = data.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise invalid_type(name, "an integer", v)
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


def flag(data: dict[str, Any], name: str) -> bool:
    v = data.get(name, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise invalid_type(name, "a boolean", v)
    return v


def include_usage(data: dict[str, Any]) -> bool:
    opts = data.get("stream_options")
    if opts is None:
        return False
    if not isinstance(opts, dict):
        raise invalid_type("stream_options", "an object", opts)
    return bool(opts.get("include_usage", False))


def natural_length(data: dict[str, Any], natural: int, room: int) -> int:
    """Where the answer would end by itself: `ignore_eos: true` never ends it (vLLM,
    llama.cpp), `min_tokens: N` not before N tokens (vLLM)."""
    if data.get("ignore_eos") is True:
        return room + 1
    floor = data.get("min_tokens")
    if isinstance(floor, int) and not isinstance(floor, bool) and floor > natural:
        return floor
    return natural


def context_check(region: Region, prompt: int, max_tokens: int | None, what: str) -> None:
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


def rate_limit(region: Region, key: str, model: str, tokens: int) -> dict[str, str]:
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


def queue_full(exc: QueueFull, headers: dict[str, str]) -> ApiError:
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


def prompt_text(data: dict[str, Any]) -> tuple[str, int]:
    if "prompt" not in data:
        raise _missing("prompt")
    prompt = data["prompt"]
    if isinstance(prompt, str):
        return prompt, estimate_tokens(prompt)
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return "\x1e".join(prompt), sum(estimate_tokens(p) for p in prompt)
        if all(isinstance(p, int) and not isinstance(p, bool) for p in prompt):
            return " ".join(map(str, prompt)), len(prompt)
    raise invalid_type("prompt", "a string or array of strings or tokens", prompt)


def embedding_inputs(data: dict[str, Any]) -> list[str | list[int]]:
    if "input" not in data:
        raise _missing("input")
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
    raise invalid_type("input", "a string or array of strings or tokens", inp)
