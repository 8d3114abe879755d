"""`endpoints:` and the target's own API: which provider API each service speaks.

`target.api` (default `openai`) says how the target is spoken to; `endpoints:` names more
services (another provider, another API), each with its API, base URL, model or
deployment, key variable, headers and price. Regions (`regions[].endpoint`) and
`client.failover` refer to endpoints by name. A team's own service (`api: http`) gives a
`request` template and a `response` mapping (see `loadkit.apis.http`).
"""

from __future__ import annotations

from typing import Any

from loadkit.apis.base import FRAMINGS, SSE, HttpTemplate
from loadkit.apis.http import PLACEHOLDERS, path_problem, placeholders_in
from loadkit.apis.registry import API_NAMES, DEFAULT_API
from loadkit.cost import Price, lookup_price
from loadkit.scenario.build.helpers import _env_name, _headers, _mapping_of, _plain, _url
from loadkit.scenario.errors import ScenarioError
from loadkit.scenario.fields import NAME_PATTERN, Field, Mapping, hint
from loadkit.scenario.model import NamedEndpoint

API_KEYS = ("api", "api_version", "deployment", "request", "response")


def api_fields(m: Mapping, where: Field) -> dict[str, Any]:
    """`api`, `api_version`, `deployment`, `request`/`response` of a target or an endpoint."""
    api = m.opt("api", lambda f: f.choice(API_NAMES), DEFAULT_API)
    if "deployment" in m and api != "azure":
        m.req("deployment").fail("only for `api: azure` (the deployment in the URL path)")
    if "api_version" in m and api not in ("azure", "anthropic"):
        m.req("api_version").fail(
            "only for `api: azure` (api-version) or `api: anthropic` (anthropic-version)"
        )
    template = None
    if api == "http":
        if "request" not in m or "response" not in m:
            where.fail("`api: http` needs `request` (the template) and `response` (the mapping)")
        template = _template(m.req("request"), m.req("response"))
    else:
        for key in ("request", "response"):
            if key in m:
                m.req(key).fail("only for `api: http` (a service of your own)")
    return {
        "api": api,
        "api_version": m.opt("api_version", lambda f: f.string().strip(), ""),
        "deployment": m.opt("deployment", lambda f: f.string().strip(), ""),
        "template": template,
    }


def _template(request_f: Field, response_f: Field) -> HttpTemplate:
    req = request_f.mapping(("method", "path", "headers", "body"), required=("path",))
    method = req.opt("method", lambda f: f.choice(("POST", "PUT", "GET")), "POST")
    path_f = req.req("path")
    path = path_f.string().strip()
    if not path.startswith("/"):
        path_f.fail(f"expected a path starting with '/', got {path!r}")
    body_f = req.get("body")
    body = None
    if body_f is not None:
        body = _plain(body_f.value)
        for name in placeholders_in(body):
            if name not in PLACEHOLDERS:
                body_f.fail(
                    f"unknown placeholder {{{{{name}}}}}{hint(name, PLACEHOLDERS)} "
                    f"(known: {', '.join(PLACEHOLDERS)})"
                )
    headers = req.opt("headers", _headers, {})
    res = response_f.mapping(("format", "text", "event", "done_event", "usage", "finish"))
    fmt = res.opt("format", lambda f: f.choice(FRAMINGS), "json")
    paths = {"text": res.opt("text", _path, ""), "finish": res.opt("finish", _path, "")}
    usage = {"prompt": "", "completion": ""}
    if "usage" in res:
        um = res.req("usage").mapping(("prompt", "completion"))
        usage = {k: um.opt(k, _path, "") for k in usage}
    for key in ("event", "done_event"):
        if key in res and fmt != SSE:
            res.req(key).fail("only for `format: sse` (the name after `event:`)")
    if fmt == "json" and not paths["text"]:
        response_f.fail("`format: json` needs `text`: the path to the answer, e.g. `answer`")
    return HttpTemplate(
        method=method,
        path=path,
        headers=headers,
        body=body,
        response=fmt,
        event=res.opt("event", lambda f: f.string().strip(), ""),
        text_path=paths["text"],
        usage_prompt_path=usage["prompt"],
        usage_completion_path=usage["completion"],
        finish_path=paths["finish"],
        done_event=res.opt("done_event", lambda f: f.string().strip(), ""),
    )


def _path(field: Field) -> str:
    text = field.string(allow_empty=True).strip()
    problem = path_problem(text)
    if problem:
        field.fail(problem)
    return text


def _endpoints(
    field: Field | None, mock_target: bool, regions: tuple[str, ...]
) -> dict[str, NamedEndpoint]:
    """`endpoints: {NAME: {api, base_url, model, ...}}`."""
    from loadkit.apis.base import Endpoint

    if field is None:
        return {}
    mapping = _mapping_of(field, "a mapping of endpoint names to {api, base_url, model, ...}")
    out: dict[str, NamedEndpoint] = {}
    for name in mapping.present_keys():
        sub = mapping.req(name)
        loc = mapping.key_locs.get(name, field.loc)
        if not NAME_PATTERN.fullmatch(str(name)):
            raise ScenarioError(
                loc, sub.path, "expected a name of letters, digits, '-', '_', '.' or ':'"
            )
        if name in regions:
            raise ScenarioError(
                loc,
                sub.path,
                f"{name!r} is a region too: failover names one or the other, so give the "
                "endpoint another name",
            )
        m = sub.mapping(
            ("base_url", "model", "api_key_env", "headers", "price", *API_KEYS),
            required=("model",),
        )
        if "base_url" not in m and not mock_target:
            sub.fail("missing required key 'base_url' (the service's URL)")
        if "base_url" not in m and "api_key_env" in m:
            m.req("api_key_env").fail("only with a `base_url` (the bundled mock needs no key)")
        model = m.req("model").string().strip()
        api = api_fields(m, sub)
        endpoint = Endpoint(
            name=name,
            base_url=m.opt("base_url", _url, ""),
            model=model,
            api=api["api"],
            deployment=api["deployment"],
            api_version=api["api_version"],
            key_env=m.opt("api_key_env", _env_name, None),
            headers=m.opt("headers", _headers, {}),
            template=api["template"],
        )
        price = m.opt("price", lambda f, m_=model: _price(f, m_), None) or lookup_price(model)
        out[name] = NamedEndpoint(endpoint=endpoint, price=price)
    return out


def _price(field: Field, model: str) -> Price:
    m = field.mapping(("input", "cached_input", "cache_write", "output"))

    def usd(f: Field) -> float:
        return f.number(low=0, high=10_000)

    base = lookup_price(model)
    rates = {
        "input_per_1m": m.opt("input", usd, None),
        "cached_input_per_1m": m.opt("cached_input", usd, None),
        "cache_write_per_1m": m.opt("cache_write", usd, None),
        "output_per_1m": m.opt("output", usd, None),
    }
    if base is None and (rates["input_per_1m"] is None or rates["output_per_1m"] is None):
        field.fail(
            f"model {model!r} is not in the price table; give `input` and `output` "
            "(USD per 1M tokens)"
        )
    import dataclasses

    start = base or Price(model=model, input_per_1m=0.0, output_per_1m=0.0, source="scenario")
    return dataclasses.replace(start, **{k: v for k, v in rates.items() if v is not None})


def check_references(top: Mapping, regions: Any, endpoints: dict[str, NamedEndpoint]) -> None:
    """Every `regions[].endpoint` names a declared endpoint."""
    names = tuple(endpoints)
    if not any(r.endpoint for r in regions):
        return
    items = top.req("regions").items()
    for region, item in zip(regions, items, strict=True):
        if region.endpoint and region.endpoint not in endpoints:
            ef = item.mapping(("name", "share", "utc_offset", "rtt", "base_url", "endpoint"))
            ef.req("endpoint").fail(
                f"unknown endpoint {region.endpoint!r}{hint(region.endpoint, names)} "
                f"(declared: {', '.join(names) or 'none: add an `endpoints:` section'})"
            )
