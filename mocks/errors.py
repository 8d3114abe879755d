"""The mock's error type and OpenAI's error shape (the default; other APIs render their own)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(Exception):
    """Raised inside handlers; the middleware turns it into OpenAI's error body.

    `close`: also close the connection after the answer (the client's request is in an
    unknown state, e.g. a body that stopped arriving). `body`: a whole error body to send
    as is, for an API whose error has another shape for this case (Azure's `{"error":
    {"code", "message"}}`).
    """

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}
        self.close = close
        self.body = body


def error_body(exc: ApiError) -> dict[str, Any]:
    if exc.body is not None:
        return exc.body
    return {
        "error": {"message": exc.message, "type": exc.type, "param": exc.param, "code": exc.code}
    }


def error_response(exc: ApiError) -> web.Response:
    resp = web.json_response(error_body(exc), status=exc.status, headers=exc.headers)
    if exc.close:
        resp.force_close()
    return resp


def too_large(limit: int) -> ApiError:
    lim = f" of {limit} bytes" if limit else ""
    return ApiError(
        413, f"Request body too large: the maximum size is{lim} exceeded.", code="request_too_large"
    )
