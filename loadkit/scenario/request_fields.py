"""`extra_body:` (per workload) and `prompt_cache:` (per scenario): what a request carries
beyond the prompt loadkit writes.

`extra_body` is merged into the JSON body of every chat / completions request the workload
sends (and of an embeddings workload's requests; not of a RAG workload's retrieval call).
Its values are sent as written. Keys that would break loadkit's own accounting are refused:
loadkit writes the prompt, names the model, sets `max_tokens` (recorded per attempt) and
asks for usage in the stream, and times one answer per request.
"""

from __future__ import annotations

import math
from typing import Any

from loadkit.scenario import units
from loadkit.scenario.errors import ScenarioError
from loadkit.scenario.fields import Field, Mapping
from loadkit.scenario.source import Value

PROMPT_CACHE_MODES = ("cold", "warm")

# key -> why loadkit sets it itself (shown in the error)
RESERVED: dict[str, str] = {
    "model": "the workload's `model:` (or the target's) names the model",
    "messages": "loadkit writes the prompt from prompt_tokens, system_prefix_tokens and history",
    "prompt": "loadkit writes the prompt from prompt_tokens, system_prefix_tokens and history",
    "input": "loadkit writes the prompt from prompt_tokens",
    "stream": "use the workload's `stream:`",
    "stream_options": "loadkit asks for usage in the stream to count tokens",
    "max_tokens": "use the workload's `output_tokens:` / `max_tokens:` (recorded per attempt)",
    "n": "loadkit times and counts one answer per request",
}


def extra_body(field: Field) -> dict[str, Any]:
    """A mapping of request-body fields, every value plain JSON; a null drops an inherited key."""
    if not field.is_map:
        field.fail(
            f"expected a mapping of request fields (e.g. {{ignore_eos: true}}), got {field.what()}"
        )
    m = Mapping(field)
    out: dict[str, Any] = {}
    for key in m.present_keys():
        if key in RESERVED:
            raise ScenarioError(
                m.key_locs.get(key, field.loc),
                m.sub_path(key),
                f"loadkit sets this field itself: {RESERVED[key]}",
            )
        out[key] = _json(m.req(key))
    return out


def _json(field: Field) -> Any:
    """The value as plain JSON (mappings, lists, text, numbers, booleans, null)."""
    value: Value = field.value
    if value.kind == "map":
        sub = Mapping(field)
        return {k: _json(Field(v, sub.sub_path(k))) for k, v in value.data.items()}
    if value.kind == "seq":
        return [_json(f) for f in field.items()]
    data = value.data
    if data is None or isinstance(data, bool | int | str):
        if isinstance(data, str) and units.KEY_LIKE.match(data):
            field.fail("this looks like an API key; a request field is stored with the run")
        return data
    if isinstance(data, float):
        if not math.isfinite(data):
            field.fail(f"expected a finite number, got {units.describe(data)}")
        return data
    field.fail(f"expected text, a number, true/false or null, got {units.describe(data)}")


def prompt_cache(field: Field) -> str:
    return field.choice(PROMPT_CACHE_MODES)
