"""Azure OpenAI's deployment routes on the region's engine.

`POST /openai/deployments/{deployment}/chat/completions`, `.../completions` and
`.../embeddings`, each with `?api-version=`: the same OpenAI-format body and stream as the
OpenAI routes (they share `OpenAIApi.generate` / `embed`), plus what Azure adds:

- `api-version` checked as Azure checks it: missing -> 404 `{"error": {"code": "404",
  "message": "Resource not found"}}`; not a published version -> 400 `{"error": {"code":
  "BadRequest", "message": "API version not supported"}}`. A version is taken as published
  if it is a real date (`YYYY-MM-DD`, optionally `-preview`) from 2022-12-01 up to today.
- auth by `api-key` (or `Authorization: Bearer`), with Azure's 401 wording;
- the deployment names the model (deployment = a model id of the profile); an unknown one
  is Azure's 404 `DeploymentNotFound`;
- headers `x-ms-region`, `apim-request-id`, `x-ratelimit-remaining-requests` and
  `x-ratelimit-remaining-tokens`; 429s in Azure's `{"error": {"code": "429", ...}}` shape
  with `retry-after` and `retry-after-ms`;
- the content filter: streams start with a `prompt_filter_results` chunk (empty
  `choices`) and choices carry `content_filter_results`. A prompt containing
  `PROMPT_FILTER_MARKER` is refused with Azure's 400 `content_filter`; one containing
  `OUTPUT_FILTER_MARKER` is answered up to half its length, then `finish_reason:
  "content_filter"`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
from typing import Any

from aiohttp import web

from mocks.common import Dialect, RegionLookup, bearer, bind, check_region, key_state, request_id
from mocks.engine import QueueFull
from mocks.errors import ApiError
from mocks.frames import AZURE_CATEGORIES, azure_filter_results
from mocks.openai_api import Flavour, OpenAIApi
from mocks.profile import ModelSpec
from mocks.ratelimit import go_duration
from mocks.region import Region

PROMPT_FILTER_MARKER = "[mock:content_filter:prompt]"
OUTPUT_FILTER_MARKER = "[mock:content_filter:output]"
FIRST_VERSION = dt.date(2022, 12, 1)
VERSION = re.compile(r"(\d{4})-(\d{2})-(\d{2})(-preview)?")
REGION_NAME = web.RequestKey("mock_azure_region", str)

FILTER_DOCS = "https://go.microsoft.com/fwlink/?linkid=2198766"


def _azure_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> ApiError:
    """An error as Azure's gateway words it: `{"error": {"code", "message"}}`."""
    body = {"error": {"code": code, "message": message}}
    return ApiError(status, message, code=code, body=body, headers=headers)


class AzureDialect(Dialect):
    """OpenAI's error shape for body checks (as Azure's backend answers them), Azure's
    own `{"error": {"code", "message"}}` where Azure's gateway answers; Azure's headers."""

    name = "azure"

    def stamp(self, request: web.Request, response: web.StreamResponse) -> None:
        h = response.headers
        rid = request_id(request)
        digits = rid.removeprefix("req_").ljust(32, "0")[:32]
        h["apim-request-id"] = (
            f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"
        )
        name = request.get(REGION_NAME)
        if name is not None:
            h["x-ms-region"] = name


AZURE = AzureDialect()


def check_version(request: web.Request) -> str:
    version = request.query.get("api-version")
    if version is None:
        raise _azure_error(404, "404", "Resource not found")
    m = VERSION.fullmatch(version)
    ok = False
    if m is not None:
        try:
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            day = None
        ok = day is not None and FIRST_VERSION <= day <= dt.datetime.now(dt.UTC).date()
    if not ok:
        raise _azure_error(400, "BadRequest", "API version not supported")
    return version


class AzureFlavour(Flavour):
    """Azure's differences from OpenAI on the shared generation path (one per request)."""

    azure = True

    def __init__(self, version: str, operation: str) -> None:
        self.version = version
        self.operation = operation  # ChatCompletions_Create, Completions_Create, ...

    def rate_limit(self, region: Region, key: str, model: str, tokens: int) -> dict[str, str]:
        d = region.limiter.check(key, tokens, asyncio.get_running_loop().time())
        headers = {
            f"x-ratelimit-remaining-{kind}": str(remaining)
            for kind, _limit, remaining, _reset in d.buckets
        }
        if d.allowed:
            return headers
        what = "call rate limit" if d.kind == "requests" else "token rate limit"
        wait = d.retry_after_s
        if math.isfinite(wait):
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            headers["retry-after-ms"] = str(max(1, round(wait * 1000)))
            when = f"Please retry after {headers['retry-after']} seconds. "
        else:
            when = "The request is larger than the limit allows. "
        msg = (
            f"Requests to the {self.operation} Operation under Azure OpenAI API version "
            f"{self.version} have exceeded {what} of your current OpenAI S0 pricing tier. "
            f"{when}Please go here: https://aka.ms/oai/quotaincrease if you would like to "
            "further increase the default rate limit."
        )
        raise _azure_error(429, "429", msg, headers=headers)

    def queue_full(self, exc: QueueFull, headers: dict[str, str]) -> ApiError:
        h = dict(headers)
        h["retry-after"] = str(max(1, math.ceil(exc.retry_after_s)))
        h["retry-after-ms"] = str(max(1, round(exc.retry_after_s * 1000)))
        msg = (
            f"Requests to the {self.operation} Operation under Azure OpenAI API version "
            f"{self.version} have been throttled: the deployment is at capacity (waiting "
            f"queue full). Please retry after {go_duration(exc.retry_after_s)}."
        )
        return _azure_error(429, "429", msg, headers=h)

    def check_prompt(self, text: str) -> bool:
        if PROMPT_FILTER_MARKER in text:
            results: dict[str, Any] = {
                c: {"filtered": False, "severity": "safe"} for c in AZURE_CATEGORIES
            }
            results["violence"] = {"filtered": True, "severity": "medium"}
            msg = (
                "The response was filtered due to the prompt triggering Azure OpenAI's content "
                "management policy. Please modify your prompt and retry. To learn more about "
                f"our content filtering policies please read our documentation: {FILTER_DOCS}"
            )
            body = {
                "error": {
                    "message": msg,
                    "type": None,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": results,
                    },
                }
            }
            raise ApiError(400, msg, param="prompt", code="content_filter", body=body)
        return OUTPUT_FILTER_MARKER in text

    def headers(self, region: Region) -> dict[str, str]:
        return {"x-ms-region": region.name}

    def whole_body(self, body: dict[str, Any], finish: str) -> None:
        body["prompt_filter_results"] = [
            {"prompt_index": 0, "content_filter_results": azure_filter_results(True, False)}
        ]
        for choice in body["choices"]:
            choice["content_filter_results"] = azure_filter_results(
                True, finish == "content_filter"
            )


OPERATIONS = {
    "chat/completions": ("ChatCompletions_Create", "chat", "chatCompletion"),
    "completions": ("Completions_Create", "chat", "completion"),
    "embeddings": ("Embeddings_Create", "embedding", "embeddings"),
}


class AzureApi:
    """Azure OpenAI's deployment routes, on the OpenAI routes' generation path."""

    def __init__(self, lookup: RegionLookup, body_timeout_s: float = 30.0) -> None:
        self.lookup = lookup
        self.openai = OpenAIApi(lookup, body_timeout_s)

    def add_routes(self, app: web.Application, prefix: str = "") -> None:
        for path in OPERATIONS:
            app.router.add_post(
                f"{prefix}/openai/deployments/{{deployment}}/{path}",
                bind(AZURE, self._handler(path)),
            )

    def _handler(self, path: str):
        operation, kind, op_word = OPERATIONS[path]

        async def handler(request: web.Request) -> web.StreamResponse:
            region = self.lookup(request)
            request[REGION_NAME] = region.name
            version = check_version(request)
            check_region(region)
            key = self._key(request, region)
            spec = self._deployment(request.match_info["deployment"], region, kind, op_word)
            flavour = AzureFlavour(version, operation)
            if kind == "embedding":
                return await self.openai.embed(request, region, key, flavour, spec)
            chat = path == "chat/completions"
            return await self.openai.generate(request, region, key, chat, flavour, spec)

        return handler

    @staticmethod
    def _key(request: web.Request, region: Region) -> str:
        key = request.headers.get("api-key", "").strip() or bearer(request)
        state = key_state(region, key)
        if state == "missing":
            raise _azure_error(
                401,
                "401",
                "Access denied due to missing subscription key. Make sure to include "
                "subscription key when making requests to an API.",
            )
        if state == "wrong":
            raise _azure_error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make "
                "sure to provide a valid key for an active subscription and use a correct "
                "regional API endpoint for your resource.",
            )
        return key or "anonymous"

    @staticmethod
    def _deployment(name: str, region: Region, kind: str, op_word: str) -> ModelSpec:
        spec = region.profile.model(name)
        if spec is None:
            raise _azure_error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again.",
            )
        if spec.kind != kind:
            raise _azure_error(
                400,
                "OperationNotSupported",
                f"The {op_word} operation does not work with the specified model, {spec.id}. "
                "Please choose different model and try again. You can learn more about which "
                "models can be used with each operation here: https://go.microsoft.com/fwlink/"
                "?linkid=2197993.",
            )
        return spec
