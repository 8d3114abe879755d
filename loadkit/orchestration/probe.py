"""One blocking call to an endpoint, spoken in its API: the start-up check's and
calibration's way to ask before any load (urllib; the run's own client lives in Locust).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from loadkit.apis.base import (
    JSON,
    SSE,
    TEXT,
    Decoder,
    Endpoint,
    Frame,
    MalformedFrame,
    PlannedCall,
    framing_of,
    shown,
)
from loadkit.apis.registry import api_of, build_request, with_auth
from loadkit.apis.sse import SSEParser
from loadkit.apis.urls import split_base

BODY_MAX = 256 * 1024


@dataclass(frozen=True)
class Answer:
    url: str
    status: int  # 0: no answer at all
    frame: Frame | None  # the decoded whole answer of a 2xx
    message: str  # why there is no frame: the API's error message, or what went wrong
    raw: bytes = b""


def _open(req: urllib.request.Request, timeout_s: float) -> tuple[int, bytes, str]:
    """(status, body, Content-Type)."""
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return int(resp.status), resp.read(BODY_MAX), resp.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read(BODY_MAX), exc.headers.get("content-type", "")


def _streamed(decoder: Decoder, framing: str, raw: bytes) -> Frame:
    """A streamed answer read whole (a service that streams whatever it is asked): its
    frames folded into one, text joined, the last usage and finish reason kept."""
    if framing == SSE:
        parser = SSEParser()
        pieces = [*parser.feed_events(raw.rstrip(b"\n")), *parser.feed_events(b"")]
    elif framing == TEXT:
        pieces = [("", raw)]
    else:
        pieces = [("", line) for line in raw.split(b"\n") if line.strip()]
    text, usage, finish, model = [], None, None, ""
    for event, data in pieces:
        f = decoder.frame(data, event)
        if f.error is not None:
            raise MalformedFrame(f"error event: {f.error}")
        text.append(f.text if f.content else "")
        usage = f.usage or usage
        finish = f.finish or finish
        model = model or f.model
    joined = "".join(text)
    return Frame(joined, bool(joined), finish or "", usage, model, end=True)


def call(
    ep: Endpoint,
    planned: PlannedCall,
    headers: Mapping[str, str],
    key: str | None,
    timeout_s: float = 10.0,
) -> Answer:
    """Send `planned` (not streamed) and decode the whole answer with the API's decoder.

    Raises OSError (urllib's URLError included) when the endpoint cannot be reached."""
    api = api_of(ep.api)
    r = build_request(ep, planned, headers, key)
    url = r.origin + r.uri
    hdrs = {**r.headers, "Accept": "application/json"}
    req = urllib.request.Request(url, data=r.body, method=r.method, headers=hdrs)
    status, raw, content_type = _open(req, timeout_s)
    if not 200 <= status < 300:
        return Answer(url, status, None, api.classify(status, raw, {}).message, raw)
    framing = framing_of(content_type)
    decoder = api.decoder(ep, planned)
    try:
        if framing not in api.framings:
            raise MalformedFrame(f"{content_type or 'no Content-Type'}: {shown(raw)}")
        if framing == JSON:
            frame = decoder.whole(json.loads(raw))
        else:
            frame = _streamed(decoder, framing, raw)
    except (ValueError, MalformedFrame) as exc:
        return Answer(url, status, None, f"an answer this API does not give ({exc})", raw)
    return Answer(url, status, frame, "", raw)


def listed_models(
    ep: Endpoint, headers: Mapping[str, str], key: str | None, timeout_s: float = 10.0
) -> tuple[str, int, list[str] | None]:
    """(url, status, the model ids it lists) where the API lists models; ids None when the
    endpoint answered no list (no such route, an error)."""
    api = api_of(ep.api)
    path = api.models_path(ep)
    if path is None:
        return "", 0, None
    origin, prefix = split_base(ep.base_url)
    url = origin + prefix + path
    hdrs = {"Accept": "application/json", **headers}
    with_auth(hdrs, api, ep, key)
    status, raw, _ = _open(urllib.request.Request(url, headers=hdrs), timeout_s)
    if status != 200:
        return url, status, None
    try:
        return url, status, api.model_ids(json.loads(raw))
    except ValueError:
        return url, status, None
