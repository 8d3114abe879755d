"""Azure OpenAI: OpenAI's body and stream behind a deployment path, an `api-key` header and
an `api-version` query.

`{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=V` (embeddings
likewise). The deployment is the endpoint's `deployment` (else its model). Azure's content
filter: a prompt it refuses is a 400 whose `error.code` is `content_filter`, an answer it
stops ends with `finish_reason: content_filter`; both are the outcome `content_filter`,
never retried. Its `prompt_filter_results` chunk (empty `choices`) carries no content.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import quote

from loadkit.apis.base import Classified, Endpoint
from loadkit.apis.openai import OpenAIApi, classified

# The newest GA version of Azure OpenAI's data-plane inference API when this was written
# (Azure OpenAI "API version lifecycle" page: 2024-10-21 is the latest GA release).
DEFAULT_API_VERSION = "2024-10-21"
CONTENT_FILTER = "content_filter"
_PATHS = {"chat": "chat/completions", "completions": "completions", "embeddings": "embeddings"}


def _code(body: bytes) -> str:
    try:
        obj = json.loads(body)
    except ValueError:
        return ""
    err = obj.get("error") if isinstance(obj, dict) else None
    code = err.get("code") if isinstance(err, dict) else None
    return str(code) if code else ""


class AzureApi(OpenAIApi):
    """OpenAI's body, stream and decoder (the deployment names the model; the body keeps
    it, as `openai.AzureOpenAI` sends it), Azure's path, key header and content filter."""

    name: ClassVar[str] = "azure"
    title: ClassVar[str] = "Azure OpenAI (deployments, api-key, api-version)"
    key_header: ClassVar[str] = "api-key"

    def path(self, ep: Endpoint, kind: str) -> str:
        deployment = quote(ep.deployment or ep.model, safe="")
        version = quote(ep.api_version or DEFAULT_API_VERSION, safe="")
        return f"/openai/deployments/{deployment}/{_PATHS[kind]}?api-version={version}"

    def auth_headers(self, ep: Endpoint, key: str | None) -> dict[str, str]:
        return {"api-key": key} if key else {}

    def classify(self, status: int, body: bytes, headers: Mapping[str, str]) -> Classified:
        verdict = classified(status, body)
        if status == 400 and _code(body) == CONTENT_FILTER:
            return Classified(CONTENT_FILTER, verdict.message)
        return verdict

    def models_path(self, ep: Endpoint) -> str | None:
        return None  # a deployment has no model list of its own: the probe call checks it


API = AzureApi()
