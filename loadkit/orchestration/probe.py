"""One blocking call to an endpoint, spoken in its API: the start-up check's and
calibration's way to ask before any load (urllib; the run's own client lives in Locust).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from loadkit.apis.base import Endpoint, Frame, MalformedFrame, PlannedCall
from loadkit.apis.registry import SECRET_HEADERS, api_of, build_request
from loadkit.apis.urls import split_base

BODY_MAX = 256 * 1024


@dataclass(frozen=True)
class Answer:
    url: str
    status: int  # 0: no answer at all
    frame: Frame | None  # the decoded whole answer of a 2xx
    message: str  # why there is no frame: the API's error message, or what went wrong
    raw: bytes = b""


def _open(req: urllib.request.Request, timeout_s: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return int(resp.status), resp.read(BODY_MAX)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read(BODY_MAX)


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
    status, raw = _open(req, timeout_s)
    if not 200 <= status < 300:
        return Answer(url, status, None, api.classify(status, raw, {}).message, raw)
    try:
        frame = api.decoder(ep, planned).whole(json.loads(raw))
    except (ValueError, MalformedFrame) as exc:
        return Answer(url, status, None, f"an answer that is not the API's JSON ({exc})", raw)
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
    keyed = any(h.lower() in SECRET_HEADERS for h in hdrs)
    for name, value in api.auth_headers(ep, key).items():
        if not (keyed and name.lower() in SECRET_HEADERS):
            hdrs.setdefault(name, value)
    status, raw = _open(urllib.request.Request(url, headers=hdrs), timeout_s)
    if status != 200:
        return url, status, None
    try:
        return url, status, api.model_ids(json.loads(raw))
    except ValueError:
        return url, status, None
