"""How a service's base URL and an OpenAI API path are joined: one definition for all.

Providers document their base URL in three forms, and users paste any of them:
`http://h:p`, `http://h:p/v1` (OpenAI, vLLM, llama.cpp) and `http://h:p/openai/v1` (a
gateway's mount point). API paths inside loadkit are the full OpenAI paths
(`/v1/chat/completions`), so the base's own trailing `/v1` is dropped before joining:
every form above reaches `.../v1/chat/completions` exactly once. The client, the chaos
proxy (its upstreams) and the start-up check all join with `api_url`, so a drill reaches
the same path as a plain run.
"""

from __future__ import annotations

from urllib.parse import urlsplit

API_VERSION_PREFIX = "/v1"


def split_base(base_url: str) -> tuple[str, str]:
    """(origin, path prefix) of a base URL; the prefix has no trailing `/` or `/v1`."""
    parts = urlsplit(base_url.strip())
    prefix = parts.path.rstrip("/")
    if prefix.endswith(API_VERSION_PREFIX):
        prefix = prefix[: -len(API_VERSION_PREFIX)]
    return f"{parts.scheme}://{parts.netloc}", prefix


def api_path(base_url: str, path: str) -> str:
    """The request path (what goes on the request line) for `path` at `base_url`."""
    return split_base(base_url)[1] + path


def api_url(base_url: str, path: str) -> str:
    """The absolute URL of `path` (e.g. `/v1/models`) at `base_url`."""
    origin, prefix = split_base(base_url)
    return origin + prefix + path
