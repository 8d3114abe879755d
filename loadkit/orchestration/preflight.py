"""The start-up check: one real request to each endpoint before any load is sent.

A TCP connect proves little: a wrong path (`/v1/v1/...`), a missing key, a gateway that
does not know the model, or a failover endpoint that does not serve it all accept
connections and then fail every request, which a run would only show as a 100% error rate
at the end (or, for a failover endpoint, only during the outage it is there for). So
`loadkit run` asks every endpoint, failover ones included, in its own API
(`loadkit.apis`): where the API lists models (`GET /v1/models` for OpenAI's and
Anthropic's), whether the endpoint serves the model it will be asked for; then, where the
list lacks it or there is no list (Azure deployments, a team's own service), a one-token
call of the API's own probe. 401, 403 and 404 stop the run with one line naming the
endpoint, the URL and the status; other statuses (an overloaded service's 429, 503 or
529) are a warning, since a drill may start that way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from loadkit.apis.base import Endpoint, PlannedCall
from loadkit.apis.registry import api_of
from loadkit.errors import UserError
from loadkit.orchestration import probe
from loadkit.results.run_folder import redact_text, safe_url

REFUSED = (401, 403, 404)


def check_endpoint(
    ep: Endpoint,
    model: str,
    headers: Mapping[str, str],
    key: str | None,
    secrets: Iterable[str] = (),
    timeout_s: float = 10.0,
    route: str = "",
) -> str | None:
    """Raise UserError if the endpoint refuses the run's requests; else a warning or None.

    `model` is what calls to it will ask for; `route` names it in messages (a region or
    an endpoint of the scenario)."""
    name = f"endpoint {route}" if route else "target"
    ep_model = ep.model or model
    try:
        url, status, ids = probe.listed_models(ep, headers, key, timeout_s)
        if ids and ep_model in ids:
            return None
        if status in (401, 403):  # the key is refused already: no call of the model needed
            answer = probe.Answer(url, status, None, "")
            unlisted = False
        else:
            unlisted = bool(ids)
            planned = api_of(ep.api).probe(ep)
            if not ep.model:
                planned = _with_model(planned, model)
            answer = probe.call(ep, planned, headers, key, timeout_s)
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        text = getattr(reason, "strerror", None) or str(reason) or type(exc).__name__
        raise UserError(f"cannot reach the {name} at {safe_url(ep.base_url)}: {text}") from None
    status, url = answer.status, answer.url
    msg = redact_text(answer.message, list(secrets)) if answer.message else ""
    what = msg or f"HTTP {status}"
    if status in REFUSED:
        hint = {
            401: "check its api_key_env and headers",
            403: "the key is not allowed this service or model",
            404: "check its base_url (the path) and its model or deployment",
        }[status]
        if unlisted:
            hint = f"it does not serve model {ep_model!r} (its model list: {_few(ids or [])})"
        raise UserError(f"{name} {safe_url(url)} answered {what} before any load: {hint}")
    if status >= 400:
        return f"warning: start-up check: {name} {safe_url(url)} answered {what}; starting anyway"
    if answer.frame is None:
        return f"warning: start-up check: {name} {safe_url(url)}: {what}; starting anyway"
    if unlisted:
        return (
            f"warning: start-up check: {name}: model {ep_model!r} is not in its model list "
            f"({_few(ids or [])}); it answered anyway"
        )
    return None


def _with_model(planned: PlannedCall, model: str) -> PlannedCall:
    return dataclasses.replace(planned, model=model)


def _few(ids: list[str], n: int = 5) -> str:
    more = f", ... ({len(ids)} in all)" if len(ids) > n else ""
    return ", ".join(ids[:n]) + more
