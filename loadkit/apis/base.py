"""What every provider API entry is made of: the planned call, the endpoint, a decoded frame.

A provider API (OpenAI, Azure OpenAI, Anthropic, a team's own HTTP service) is one
`ProviderApi` subclass in its own module, registered by name in `loadkit.apis`. It says
how a call is addressed (URL, auth), what body it sends, how the answer is framed and
what each frame means (one `Decoder`, read by the client's timing and by the chaos
proxy's mid-stream faults alike), how a failed status is classified, and what the
start-up check sends. Pure: no gevent, no aiohttp, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

CallKind = Literal["chat", "completions", "embeddings"]

# How an answer's body is cut into frames, read from its Content-Type (never from the
# request: a gateway may ignore `stream: true`).
SSE, NDJSON, TEXT, JSON = "sse", "ndjson", "text", "json"
FRAMINGS = (SSE, NDJSON, TEXT, JSON)


def framing_of(content_type: str | None) -> str | None:
    """The framing a Content-Type announces; None for one no API speaks (an HTML page)."""
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct == "text/event-stream":
        return SSE
    if ct in ("application/x-ndjson", "application/ndjson", "application/jsonl"):
        return NDJSON
    if ct == "application/json" or (ct.startswith("application/") and ct.endswith("+json")):
        return JSON
    if ct == "text/plain":
        return TEXT
    return None


@dataclass(frozen=True, slots=True)
class PlannedCall:
    """One logical request as the workload planned it, before any API shaped it."""

    kind: CallKind
    region: str
    workload: str
    model: str
    session_id: str = ""
    turn: int = 0
    messages: Sequence[Mapping[str, str]] | None = None
    prompt: str | None = None
    input: str | Sequence[str] | None = None
    max_tokens: int | None = None
    stream: bool = True
    request_id: str = ""  # a fresh one is made when empty
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    planned_prompt_tokens: int = 0  # the prompt size the workload asked for (0: unknown)
    shared_prefix: bool = False  # the prompt opens with a prefix other calls share


def prompt_text(call: PlannedCall) -> str:
    """All the text a call sends (the token estimate's input when the service reports none)."""
    if call.messages is not None:
        return "".join(str(m.get("content") or "") for m in call.messages)
    if call.prompt is not None:
        return call.prompt
    if isinstance(call.input, str):
        return call.input
    return "".join(call.input or ())


def split_system(call: PlannedCall) -> tuple[str, list[dict[str, str]]]:
    """(system prompt, the other messages) of a chat call; a completions prompt is one user turn."""
    if call.messages is None:
        text = call.prompt if call.prompt is not None else prompt_text(call)
        return "", [{"role": "user", "content": text}]
    system = [str(m.get("content") or "") for m in call.messages if m.get("role") == "system"]
    rest = [
        {"role": str(m.get("role") or "user"), "content": str(m.get("content") or "")}
        for m in call.messages
        if m.get("role") != "system"
    ]
    return "\n\n".join(system), rest


@dataclass(frozen=True)
class HttpTemplate:
    """A team's own service: the request it takes and where its answer keeps the text.

    `body` is JSON with `{{placeholder}}` strings (see `loadkit.apis.http`); the paths are
    dotted paths into each frame (`choices.0.delta.content`), "" for the frame itself.
    """

    method: str = "POST"
    path: str = "/api/ask"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    response: str = JSON  # json | sse | ndjson | text
    event: str = ""  # sse: the event name whose frames carry text ("" = any)
    text_path: str = ""
    usage_prompt_path: str = ""
    usage_completion_path: str = ""
    finish_path: str = ""
    done_event: str = ""  # sse: the event that ends the answer ("" = the stream's end)


@dataclass(frozen=True)
class Endpoint:
    """One named service the scenario calls: its API and where and how to reach it."""

    name: str
    base_url: str
    model: str
    api: str = "openai"
    deployment: str = ""  # azure: the deployment name in the path ("" = the model)
    api_version: str = ""  # azure: the api-version query; anthropic: anthropic-version
    key_env: str | None = None  # the NAME of an environment variable, never a key
    headers: Mapping[str, str] = field(default_factory=dict)  # values may hold ${ENV}
    template: HttpTemplate | None = None  # api: http


def model_for(ep: Endpoint, call: PlannedCall) -> str:
    """The model a call asks for at an endpoint: a named endpoint's own (a failover to
    another provider names its model there), except for embeddings, which keep theirs."""
    return call.model if call.kind == "embeddings" or not ep.model else ep.model


class Usage(NamedTuple):
    """Token counts in OpenAI's convention: `prompt` is the whole prompt, cache reads and
    cache writes included."""

    prompt: int
    completion: int
    cached: int = 0  # prompt tokens read from the provider's cache
    cache_write: int = 0  # prompt tokens written to it (Anthropic prices them)


class Frame(NamedTuple):
    """What one frame of an answer means (a tuple: built once per token on the hot path)."""

    text: str = ""  # content or reasoning text carried
    content: bool = False  # carries text or reasoning: counts for TTFT, ITL, after_tokens
    finish: str | None = None  # the record's words: stop, length, content_filter, tool_calls
    usage: Usage | None = None  # cumulative for the answer so far
    model: str = ""  # who the service says is answering
    error: str | None = None  # an error event inside a 200 answer
    error_outcome: str = "stream_error"  # the outcome such an error records
    end: bool = False  # the answer is complete (`[DONE]`, `message_stop`, done event)


NOTHING = Frame()
END = Frame(end=True)


class MalformedFrame(ValueError):
    """Bytes that are not a frame of this API (the message names what arrived)."""


def shown(raw: bytes | str, limit: int = 60) -> str:
    """How unexpected bytes are named in an error: a short repr."""
    return repr(raw[:limit])


class Decoder:
    """Reads one answer's frames; stateful (usage may come in several events)."""

    # True: the body's clean end is the answer's end (chunked text, NDJSON); False: an
    # answer must say it ended (`[DONE]`, a finish reason, `message_stop`), else it was cut
    ends_with_body: bool = False

    def frame(self, data: bytes, event: str = "") -> Frame:
        """One framed payload: an SSE event's data (with its name), an NDJSON line or a
        chunk of text. Raises MalformedFrame for bytes this API never sends."""
        raise NotImplementedError

    def whole(self, obj: Any) -> Frame:
        """A whole JSON answer, parsed; raises MalformedFrame when it is not one."""
        raise NotImplementedError

    def fast_text(self, data: bytes) -> bytes | None:
        """The text of a plain content frame found without JSON, or None (ask `frame`)."""
        return None


@dataclass(frozen=True)
class Request:
    """An HTTP request an API entry built (the URI is relative to the origin)."""

    method: str
    origin: str
    uri: str
    headers: Mapping[str, str]
    body: bytes | None


@dataclass(frozen=True)
class Classified:
    """A non-2xx answer as the API means it."""

    outcome: str
    message: str


class ProviderApi:
    """One provider API. Subclasses fill the class attributes and the methods."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # for docs and reports
    kinds: ClassVar[tuple[CallKind, ...]] = ("chat",)
    framings: ClassVar[tuple[str, ...]] = (SSE, JSON)
    key_header: ClassVar[str] = "Authorization"  # where the API key goes
    retry_statuses: ClassVar[frozenset[int]] = frozenset()  # retried beyond the policy's

    def path(self, ep: Endpoint, kind: CallKind) -> str:
        """The request path below the endpoint's base URL (query included)."""
        raise NotImplementedError

    def method(self, ep: Endpoint) -> str:
        return "POST"

    def accept(self, ep: Endpoint, stream: bool) -> str:
        return "text/event-stream" if stream else "application/json"

    def auth_headers(self, ep: Endpoint, key: str | None) -> dict[str, str]:
        """The headers that carry the key and the API's version."""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def body(self, ep: Endpoint, call: PlannedCall) -> dict[str, Any] | None:
        raise NotImplementedError

    def decoder(self, ep: Endpoint, call: PlannedCall) -> Decoder:
        raise NotImplementedError

    def classify(self, status: int, body: bytes, headers: Mapping[str, str]) -> Classified:
        """Outcome and message of a non-2xx answer."""
        raise NotImplementedError

    def probe(self, ep: Endpoint) -> PlannedCall:
        """The one small call the start-up check sends (also the model check, where the
        API lists its models: see `models_path`)."""
        return PlannedCall(
            kind="chat",
            region="",
            workload="preflight",
            model=ep.model,
            messages=({"role": "user", "content": "Say ok."},),
            max_tokens=1,
            stream=False,
        )

    def models_path(self, ep: Endpoint) -> str | None:
        """Where the API lists the models an endpoint serves (None: it has no such list)."""
        return None

    def model_ids(self, obj: Any) -> list[str]:
        """The model names in a `models_path` answer."""
        data = obj.get("data") if isinstance(obj, dict) else None
        return [str(m.get("id")) for m in data or () if isinstance(m, dict) and m.get("id")]
