"""A team's own HTTP service (`POST /api/ask`, a LangServe chain): a request template and a
response mapping instead of a provider's fixed protocol.

The request: method, path, headers (values may hold `${ENV}`, redacted like API keys) and
a JSON body in which placeholders stand for the planned call. A string that is exactly
one placeholder is replaced by the value itself (`"{{messages}}"` becomes a list,
`"{{max_tokens}}"` a number); placeholders inside a longer string are replaced by their
text, which JSON then escapes. Placeholders: `{{prompt}}` (the whole prompt as one text),
`{{question}}` (the last user message), `{{system}}`, `{{messages}}` (OpenAI-style list),
`{{session_id}}`, `{{turn}}`, `{{max_tokens}}`, `{{model}}`, `{{workload}}`,
`{{stream}}` (true/false).

The answer: `json` (one JSON body), `sse` (server-sent events; `event` names the event
whose frames carry text, `done_event` the one that ends the answer), `ndjson` (one JSON
object per line) or `text` (chunked plain text: every byte is answer). Paths into a frame
are dotted: `choices.0.delta.content`, `answer`, `usage.output_tokens`; "" is the frame
itself (a JSON string, or the raw data of a non-JSON event). Without usage paths the
tokens are estimated and the record says so (`tokens_source`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from loadkit.apis.base import (
    END,
    FRAMINGS,
    JSON,
    NOTHING,
    SSE,
    TEXT,
    Classified,
    Decoder,
    Endpoint,
    Frame,
    HttpTemplate,
    MalformedFrame,
    PlannedCall,
    ProviderApi,
    Usage,
    prompt_text,
    shown,
    split_system,
)
from loadkit.apis.openai import classified

PLACEHOLDERS = (
    "prompt",
    "question",
    "system",
    "messages",
    "session_id",
    "turn",
    "max_tokens",
    "model",
    "workload",
    "stream",
)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_PATH = re.compile(r"^$|^[^.\s]+(\.[^.\s]+)*$")


def placeholders_in(value: Any) -> list[str]:
    """Every placeholder name a template value uses (for validation)."""
    if isinstance(value, str):
        return _PLACEHOLDER.findall(value)
    if isinstance(value, Mapping):
        return [n for k, v in value.items() for n in (*placeholders_in(k), *placeholders_in(v))]
    if isinstance(value, list | tuple):
        return [n for v in value for n in placeholders_in(v)]
    return []


def path_problem(path: str) -> str | None:
    """Why a dotted path is not one (None when it is)."""
    return None if _PATH.match(path) else f"{path!r} is not a dotted path like `a.b.0.c`"


def at(obj: Any, path: str) -> Any:
    """The value at a dotted path, None where it does not lead anywhere."""
    if not path:
        return obj
    for part in path.split("."):
        if isinstance(obj, Mapping):
            obj = obj.get(part)
        elif isinstance(obj, list) and part.lstrip("-").isdigit():
            i = int(part)
            obj = obj[i] if -len(obj) <= i < len(obj) else None
        else:
            return None
    return obj


def values_of(call: PlannedCall) -> dict[str, Any]:
    system, messages = split_system(call)
    users = [m["content"] for m in messages if m.get("role") == "user"]
    return {
        "prompt": prompt_text(call),
        "question": users[-1] if users else prompt_text(call),
        "system": system,
        "messages": [dict(m) for m in call.messages or messages],
        "session_id": call.session_id,
        "turn": call.turn,
        "max_tokens": call.max_tokens,
        "model": call.model,
        "workload": call.workload,
        "stream": call.stream,
    }


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """The template with its placeholders filled (see the module doc)."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template.strip())
        if whole:
            return values[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: _as_text(values[m.group(1)]), template)
    if isinstance(template, Mapping):
        return {render(k, values): render(v, values) for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [render(v, values) for v in template]
    return template


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value)


def _int_at(obj: Any, path: str) -> int | None:
    if not path:
        return None
    v = at(obj, path)
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


class TemplateDecoder(Decoder):
    """Frames of a team's own service, read with the scenario's response mapping."""

    def __init__(self, t: HttpTemplate) -> None:
        self.t = t
        self.ends_with_body = not (t.response == SSE and t.done_event)

    def _read(self, obj: Any, end: bool) -> Frame:
        t = self.t
        text = at(obj, t.text_path)
        text = text if isinstance(text, str) else ""
        prompt = _int_at(obj, t.usage_prompt_path)
        completion = _int_at(obj, t.usage_completion_path)
        usage = None
        if prompt is not None or completion is not None:
            usage = Usage(prompt or 0, completion or 0)
        finish = at(obj, t.finish_path) if t.finish_path else None
        finish = str(finish)[:40] if finish not in (None, "") else None
        if end and finish is None:
            finish = ""
        return Frame(text, bool(text), finish, usage, end=end)

    def frame(self, data: bytes, event: str = "") -> Frame:
        t = self.t
        if t.response == TEXT:
            text = data.decode("utf-8", "replace")
            return Frame(text, bool(text))
        if t.response == SSE and t.done_event and event == t.done_event:
            try:
                return self._read(json.loads(data), end=True)._replace(text="", content=False)
            except ValueError:
                return END
        if t.response == SSE and t.event and event != t.event:
            return NOTHING
        try:
            obj = json.loads(data)
        except ValueError as exc:
            if t.response == SSE and not t.text_path:  # plain text events
                text = data.decode("utf-8", "replace")
                return Frame(text, bool(text))
            raise MalformedFrame(f"not JSON: {shown(data)}") from exc
        return self._read(obj, end=False)

    def whole(self, obj: Any) -> Frame:
        return self._read(obj, end=True)


class HttpApi(ProviderApi):
    name: ClassVar[str] = "http"
    title: ClassVar[str] = "your own HTTP service: a request template and a response mapping"
    kinds = ("chat",)
    framings = FRAMINGS

    def _t(self, ep: Endpoint) -> HttpTemplate:
        if ep.template is None:
            raise ValueError(f"endpoint {ep.name!r} (api: http) has no request template")
        return ep.template

    def path(self, ep: Endpoint, kind: str) -> str:
        return self._t(ep).path

    def method(self, ep: Endpoint) -> str:
        return self._t(ep).method

    def body(self, ep: Endpoint, call: PlannedCall) -> Any:
        t = self._t(ep)
        return None if t.body is None else render(t.body, values_of(call))

    def accept(self, ep: Endpoint, stream: bool) -> str:
        return {
            JSON: "application/json",
            SSE: "text/event-stream",
            TEXT: "text/plain",
        }.get(self._t(ep).response, "application/x-ndjson")

    def decoder(self, ep: Endpoint, call: PlannedCall) -> Decoder:
        return TemplateDecoder(self._t(ep))

    def classify(self, status: int, body: bytes, headers: Mapping[str, str]) -> Classified:
        return classified(status, body)


API = HttpApi()
