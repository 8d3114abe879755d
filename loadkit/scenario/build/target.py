"""`target:`: the bundled mock (a profile, overrides) or a real service (URL, key, headers)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from loadkit.errors import UserError
from loadkit.scenario.build.endpoints import API_KEYS, api_fields
from loadkit.scenario.build.helpers import _env_name, _headers, _mapping_of, _plain, _url
from loadkit.scenario.errors import ScenarioError, format_error
from loadkit.scenario.fields import NAME_PATTERN, Field, Mapping, hint
from loadkit.scenario.model import DEFAULT_SERVED_BY_HEADERS, Target, Upstream

KNOWN_MOCK_PROFILES = ("hosted-api", "vllm-h100")
AZURE_RECORD_HEADERS = ("x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens")
DEFAULT_MOCK_MODEL = "gpt-4o-mini"


def _target(field: Field | None, base_dir: Path = Path(".")) -> Target:
    if field is None:
        return Target(kind="mock", model=DEFAULT_MOCK_MODEL, mock_profile="hosted-api")
    m = field.mapping(
        (
            "mock",
            "overrides",
            "base_url",
            "api_key_env",
            "headers",
            "model",
            "region_endpoints",
            "tokenizer",
            "upstreams",
            "served_by_headers",
            "record_headers",
            *API_KEYS,
        )
    )
    api = api_fields(m, field)
    # Azure's rate-limit headers say how close a deployment runs to its quota: kept by
    # default for an Azure target (x-ms-region is already a served_by header)
    record_default = AZURE_RECORD_HEADERS if api["api"] == "azure" else ()
    extras: dict[str, Any] = {
        "served_by_headers": m.opt("served_by_headers", _header_names, DEFAULT_SERVED_BY_HEADERS),
        "record_headers": m.opt("record_headers", _header_names, record_default),
        **api,
    }
    tokenizer = m.opt("tokenizer", lambda f: _tokenizer(f, base_dir), None)
    mock, base_url = m.get("mock"), m.get("base_url")
    if mock is not None and base_url is not None:
        field.fail("give either `mock: <profile>` or `base_url`, not both")
    if mock is None and base_url is None:
        field.fail("missing `mock: <profile>` (the bundled mock) or `base_url` (a real service)")
    model = m.opt("model", lambda f: f.string(), "")
    headers = m.opt("headers", _headers, {})
    endpoints = m.opt("region_endpoints", _endpoint_map, {})
    if mock is not None:
        for key in ("api_key_env", "upstreams"):
            if key in m:
                m.req(key).fail("only for a `base_url` target (the mock needs no key)")
        profile = mock.choice(_mock_profiles())
        overrides = m.opt("overrides", _mock_overrides, {})
        if overrides:
            _check_overrides(m.req("overrides"), profile, overrides)
        served = _mock_models(profile, overrides)
        # the mock's Messages API route answers any claude-* model besides the profile's
        claude = extras["api"] == "anthropic" and model.startswith("claude-")
        if model and served and model not in served and not claude:
            m.req("model").fail(
                f"the mock profile {profile} serves {', '.join(served)}; "
                f"got {model!r}{hint(model, served)}"
            )
        if not model:
            model = next(iter(served), DEFAULT_MOCK_MODEL)
        return Target(
            kind="mock",
            model=model,
            mock_profile=profile,
            mock_overrides=overrides,
            headers=headers,
            region_endpoints=endpoints,
            tokenizer=tokenizer,
            **extras,
        )
    if "overrides" in m:
        m.req("overrides").fail("only for a `mock:` target")
    if not model:
        field.fail("missing required key 'model' (the model name the service expects)")
    return Target(
        kind="http",
        model=model,
        base_url=_url(base_url),
        api_key_env=m.opt("api_key_env", _env_name, None),
        headers=headers,
        region_endpoints=endpoints,
        tokenizer=tokenizer,
        upstreams=m.opt("upstreams", _upstreams, ()),
        **extras,
    )


_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an HTTP token (RFC 9110)


def _header_names(field: Field) -> tuple[str, ...]:
    names: list[str] = []
    for item in field.items(min_len=1):
        name = item.string().strip().lower()
        if not _HEADER_NAME.match(name):
            item.fail(f"expected an HTTP header name like x-litellm-model-id, got {item.what()}")
        if name in names:
            item.fail(f"header {name!r} is listed twice")
        names.append(name)
    return tuple(names)


def _upstreams(field: Field) -> tuple[Upstream, ...]:
    """`upstreams: {NAME: {url: ..., listen: PORT}}`: the services behind a gateway target."""
    mapping = _mapping_of(field, "a mapping of upstream names to {url, listen}")
    out: list[Upstream] = []
    by_port: dict[int, str] = {}
    for name in mapping.present_keys():
        sub = mapping.req(name)
        if not NAME_PATTERN.fullmatch(str(name)):
            raise ScenarioError(
                mapping.key_locs.get(name, field.loc),
                sub.path,
                "expected a name of letters, digits, '-', '_', '.' or ':'",
            )
        m = sub.mapping(("url", "listen"), required=("url", "listen"))
        listen_f = m.req("listen")
        port = listen_f.integer(low=1, high=65535)
        if port in by_port:
            listen_f.fail(f"port {port} is already the listen port of upstream {by_port[port]}")
        by_port[port] = name
        out.append(
            Upstream(
                name=name,
                url=_url(m.req("url")),
                listen=port,
                source=format_error(listen_f.loc, listen_f.path, "").rstrip(": "),
            )
        )
    if not out:
        field.fail("expected at least one upstream")
    return tuple(out)


def _tokenizer(field: Field, base_dir: Path) -> str:
    """A local Hugging Face `tokenizer.json` (relative to the scenario); checked by loading it."""
    from loadkit.workload.tokenizer import load_tokenizer

    path = (base_dir / field.string().strip()).resolve()
    try:
        load_tokenizer(path)
    except ValueError as exc:
        field.fail(str(exc))
    return str(path)


def _mock_profiles() -> tuple[str, ...]:
    """Profiles shipped in mocks/profiles/ (falls back to the documented two)."""
    try:
        from importlib import resources

        folder = resources.files("mocks").joinpath("profiles")
        names = sorted(
            p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")
        )
    except (ModuleNotFoundError, OSError, TypeError):
        names = []
    return tuple(names) or KNOWN_MOCK_PROFILES


def _check_overrides(field: Field, profile: str, overrides: dict[str, Any]) -> None:
    """Let the mock's own profile loader judge the override values (types, ranges)."""
    try:
        from mocks.profile import apply_overrides, bundled_profiles, load_profile
    except ImportError:  # pragma: no cover - the mock ships with loadkit
        return
    if profile not in bundled_profiles():
        return
    try:
        apply_overrides(load_profile(profile), overrides)
    except UserError as exc:
        field.fail(f"the mock rejects these overrides: {exc}")
    except (TypeError, ValueError, AttributeError) as exc:
        field.fail(f"the mock rejects these overrides: {exc}")


def _mock_models(profile: str, overrides: dict[str, Any]) -> tuple[str, ...]:
    """Model ids the mock serves with this profile, chat models first (empty if unknown)."""
    try:
        from mocks.profile import apply_overrides, bundled_profiles, load_profile

        if profile not in bundled_profiles():
            return ()
        prof = apply_overrides(load_profile(profile), overrides)
    except (ImportError, UserError, TypeError, ValueError, AttributeError):
        return ()
    models = sorted(prof.models, key=lambda spec: spec.kind != "chat")
    return tuple(spec.id for spec in models)


def _mock_overrides(field: Field) -> dict[str, Any]:
    m = _mapping_of(field, "a mapping of mock profile keys")
    allowed = _profile_keys()
    out: dict[str, Any] = {}
    for key, value in m.data.items():
        if allowed and key not in allowed:
            raise ScenarioError(
                m.key_locs.get(key, field.loc),
                m.sub_path(key),
                f"unknown mock profile key{hint(key, allowed) or ''}"
                + ("" if hint(key, allowed) else f" (known: {', '.join(allowed)})"),
            )
        out[key] = _plain(value)
    return out


def _profile_keys() -> tuple[str, ...]:
    try:
        from mocks.profile import PROFILE_KEYS
    except ImportError:  # pragma: no cover - the mock ships with loadkit
        return ()
    return tuple(k for k in PROFILE_KEYS if k != "name")


def _endpoint_map(field: Field) -> dict[str, str]:
    m = _mapping_of(field, "a mapping of region name to base URL")
    return {key: _url(m.req(key)) for key in m.present_keys()}


def _check_target_regions(top: Mapping, target: Target, regions: tuple[str, ...]) -> Target:
    for key in target.region_endpoints:
        if key not in regions:
            tf = top.req("target")
            ef = Mapping(tf).req("region_endpoints")
            raise ScenarioError(
                Mapping(ef).key_locs.get(key, ef.loc),
                f"target.region_endpoints.{key}",
                f"unknown region{hint(key, regions)} (declared: {', '.join(regions)})",
            )
    return target
