"""Parsers more than one section of a scenario uses: URLs, env var names, trace files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadkit.errors import UserError
from loadkit.scenario import units
from loadkit.scenario.fields import Field, Mapping
from loadkit.scenario.source import Value

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*")


def _mapping_of(field: Field, expected: str) -> Mapping:
    """A mapping whose keys the caller checks one by one (header names, regions, percentiles)."""
    if not field.is_map:
        field.fail(f"expected {expected}, got {field.what()}")
    return Mapping(field)


def _url(field: Field) -> str:
    text = field.string().strip()
    if not _URL.fullmatch(text):
        field.fail(
            f"expected an http(s) URL like https://api.openai.com/v1, got {units.describe(text)}"
        )
    try:
        password = urlsplit(text).password
    except ValueError:
        password = None
    if password:
        # The URL travels to every worker and into run-config.json: no secret in it.
        field.fail(
            "a password in the URL; send credentials in a header from an environment "
            "variable instead (headers: {authorization: 'Basic ${MY_CREDENTIALS}'})"
        )
    return text.rstrip("/")


def _env_name(field: Field) -> str:
    text = field.string().strip()
    if units.KEY_LIKE.match(text) or len(text) > 64:
        field.fail(
            "this looks like an API key; put the key in an environment variable and give "
            "the variable's NAME here (e.g. OPENAI_API_KEY)"
        )
    if not _ENV_NAME.fullmatch(text):
        field.fail(
            f"expected an environment variable name like OPENAI_API_KEY, got {units.describe(text)}"
        )
    return text


def _read_trace(field: Field, path: Path, fmt: str | None) -> Any:
    from loadkit.workload.traces import read_trace

    if not path.is_file():
        field.fail(f"trace file not found: {path}")
    try:
        return read_trace(path, fmt)
    except (UserError, ValueError, OSError) as exc:
        field.fail(f"cannot read trace: {exc}")


_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "ocp-apim-subscription-key")


def _headers(field: Field) -> dict[str, str]:
    m = _mapping_of(field, "a mapping of header names to values")
    out: dict[str, str] = {}
    for key in m.present_keys():
        value = m.req(key)
        text = value.string(allow_empty=True)
        for ref in _ENV_REF.findall(text):
            if not _ENV_NAME.fullmatch(ref):
                value.fail(f"${{{ref}}} is not an environment variable name")
        if key.lower() in _SECRET_HEADERS and not _ENV_REF.search(text):
            value.fail(
                f"a literal secret in header {key!r}; write it as ${{ENV_VAR}} and set the "
                "variable when you run"
            )
        if units.KEY_LIKE.search(_ENV_REF.sub("", text)):
            value.fail("this looks like a literal API key; use ${ENV_VAR} instead")
        out[key] = text
    return out


def _plain(value: Value) -> Any:
    """A located YAML value as plain Python data."""
    if value.kind == "map":
        return {k: _plain(v) for k, v in value.data.items()}
    if value.kind == "seq":
        return [_plain(v) for v in value.data]
    return value.data
