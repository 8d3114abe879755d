"""The provider-API registry: one entry per API, by name, and the request each builds.

Adding an API: a module in `loadkit/apis/` with one `ProviderApi` subclass and its
instance `API`, one line in `APIS` below, a mock route, and a row in docs/apis.md;
`tests/unit/test_apis.py` checks that every entry has all of them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from loadkit.apis import anthropic, azure, http, openai
from loadkit.apis.base import Endpoint, PlannedCall, ProviderApi, Request
from loadkit.apis.urls import split_base

APIS: dict[str, ProviderApi] = {m.API.name: m.API for m in (openai, azure, anthropic, http)}
API_NAMES: tuple[str, ...] = tuple(APIS)
DEFAULT_API = "openai"
SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})


def api_of(name: str) -> ProviderApi:
    try:
        return APIS[name]
    except KeyError:
        raise ValueError(f"unknown api {name!r} (known: {', '.join(API_NAMES)})") from None


def with_auth(headers: dict[str, str], api: ProviderApi, ep: Endpoint, key: str | None) -> None:
    """Add the API's auth and version headers to `headers`, unless the scenario set the
    same header, or a credential of its own (a gateway's `Authorization`)."""
    have = {h.lower() for h in headers}
    keyed = bool(have & SECRET_HEADERS)
    for name, value in api.auth_headers(ep, key).items():
        if name.lower() not in have and not (keyed and name.lower() in SECRET_HEADERS):
            headers[name] = value


def build_request(
    ep: Endpoint,
    call: PlannedCall,
    headers: Mapping[str, str],
    key: str | None = None,
) -> Request:
    """The request `call` becomes at `ep`: URL, the API's auth and version headers, body.

    `headers` are the run's own (already resolved: the scenario's headers, loadkit's
    tracing headers); the API's auth headers go last unless the scenario set one already.
    """
    api = api_of(ep.api)
    origin, prefix = split_base(ep.base_url)
    payload = api.body(ep, call)
    out = {
        "Content-Type": "application/json",
        "Accept": api.accept(ep, call.stream),
        "Accept-Encoding": "identity",
        **headers,
    }
    with_auth(out, api, ep, key)
    body = None if payload is None else json.dumps(payload).encode()
    return Request(api.method(ep), origin, prefix + api.path(ep, call.kind), out, body)


API_HEADER = (
    "x-loadkit-api"  # the client says which API a request speaks (the chaos proxy reads it)
)


def api_of_request(path: str, header: str | None = None) -> str:
    """The API a proxied request speaks: the client's `x-loadkit-api` header, else its path."""
    if header in APIS:
        return header
    path = path.split("?", 1)[0]
    if path.endswith("/v1/messages"):
        return "anthropic"
    if "/openai/deployments/" in path:
        return "azure"
    if path.endswith(("/chat/completions", "/completions", "/embeddings")):
        return "openai"
    return "http"
