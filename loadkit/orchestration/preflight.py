"""The start-up check: one real request to each endpoint before any load is sent.

A TCP connect proves little: a wrong path (`/v1/v1/...`), a missing key or a gateway
that does not know the model all accept connections and then fail every request, which
a run would only show as a 100% error rate at the end. So `loadkit run` asks each
endpoint `GET /v1/models` (joined with `loadkit.apis.urls.api_url`, as the client joins its
calls) with the run's own headers; a target without that route (404/405/501) is asked
for a 1-token chat completion of the scenario's model instead. 401, 403 and 404 to that
request stop the run with one line naming the URL and the status; other statuses
(an overloaded service's 429 or 503) are a warning, since a drill may start that way.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping

from loadkit.apis.urls import api_url
from loadkit.errors import UserError
from loadkit.results.run_folder import redact_text, safe_url

REFUSED = (401, 403, 404)
_NO_ROUTE = (404, 405, 501)
_BODY_MAX = 16 * 1024


def _request(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout_s: float
) -> tuple[int, str]:
    """(status, error message from an OpenAI-shaped body or "")."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers))
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read(_BODY_MAX)
            return int(resp.status), ""
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), _message(exc.read(_BODY_MAX))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        text = getattr(reason, "strerror", None) or str(reason) or type(exc).__name__
        raise UserError(f"cannot reach the target {safe_url(url)}: {text}") from None


def _message(raw: bytes) -> str:
    try:
        obj = json.loads(raw)
    except ValueError:
        return ""
    err = obj.get("error") if isinstance(obj, dict) else None
    msg = err.get("message") if isinstance(err, dict) else err
    return str(msg)[:160] if msg else ""


def check_endpoint(
    base_url: str,
    headers: Mapping[str, str],
    model: str,
    secrets: Iterable[str] = (),
    timeout_s: float = 10.0,
) -> str | None:
    """Raise UserError if the endpoint refuses the run's requests; else a warning or None."""
    hdrs = {"Accept": "application/json", **headers}
    url = api_url(base_url, "/v1/models")
    status, msg = _request("GET", url, hdrs, None, timeout_s)
    if status in _NO_ROUTE:
        url = api_url(base_url, "/v1/chat/completions")
        body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
        hdrs["Content-Type"] = "application/json"
        status, msg = _request("POST", url, hdrs, json.dumps(body).encode(), timeout_s)
    what = f"HTTP {status}" + (f" ({redact_text(msg, secrets)})" if msg else "")
    if status in REFUSED:
        hint = {
            401: "check target.api_key_env and target.headers",
            403: "the key is not allowed this service or model",
            404: "check target.base_url (the path) and target.model",
        }[status]
        raise UserError(f"target {safe_url(url)} answered {what} before any load: {hint}")
    if status >= 400:
        return f"warning: start-up check: {safe_url(url)} answered {what}; starting anyway"
    return None
