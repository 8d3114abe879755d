"""The mock's connection-level defences: the shared guard (`loadkit.serving.guard`) with
errors in OpenAI's shape (a 408 for headers that never finish, a 400 for a request aiohttp
cannot parse)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from loadkit.serving.guard import GuardedRunner as _Guarded
from mocks.errors import ApiError, error_body


def openai_shape(status: int, message: str, client_error: bool) -> dict[str, Any]:
    etype = "invalid_request_error" if client_error else "server_error"
    code = "timeout" if status == 408 else None
    return error_body(ApiError(status, message, etype, code=code))


class GuardedRunner(_Guarded):
    def __init__(self, app: web.Application, *, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, header_timeout_s=header_timeout_s, shape=openai_shape, **kwargs)
