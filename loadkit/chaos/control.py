"""The REST control API under `/chaos/` on the proxy's front listener.

| route | what |
|---|---|
| `GET /chaos/faults` | the active faults |
| `POST /chaos/faults` | add one (409 if its id is active) |
| `PUT /chaos/faults/{id}` | add or replace |
| `PATCH /chaos/faults/{id}` | change `rate`, `where`, `params`, `max_hits` of an active one |
| `DELETE /chaos/faults/{id}` | remove (404 if not active) |
| `POST /chaos/load` | replace the whole set: `{"faults": [...]}` (JSON, or a fault file as YAML) |
| `POST /chaos/reset` | remove every fault, zero the counters, reopen every region |
| `GET /chaos/status` | counters per fault, requests, active streams, regions |
| `GET /chaos/journal` | every change of the active set with its time |

With a token (`--token` / `LOADKIT_CHAOS_TOKEN`) every route needs `Authorization: Bearer
TOKEN` or `x-loadkit-chaos-token: TOKEN`; without one, only loopback peers may call it.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Protocol

from aiohttp import web

from loadkit.chaos import responses
from loadkit.chaos.body import BodyRejected, ClientGone, parse_document, read_body
from loadkit.chaos.faults import FaultSet, FaultSpec, FaultSpecError, fault_from_json
from loadkit.serving.control_token import token_ok

PREFIX = "/chaos"


def _err(status: int, message: str, code: str | None = None) -> web.Response:
    body = responses.openai_error(message, "chaos_error", None, code)
    return web.Response(body=body, status=status, content_type="application/json")


class FaultHost(Protocol):
    """What the control API needs of the server it steers (the chaos proxy is one)."""

    token: str | None
    max_body: int
    faults: FaultSet
    journal: list[dict[str, Any]]

    async def put(self, spec: FaultSpec) -> str: ...
    async def remove(self, fid: str) -> bool: ...
    async def replace_all(self, specs: list[FaultSpec]) -> None: ...
    async def reset(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


class ControlApi:
    def __init__(self, proxy: FaultHost) -> None:
        self.proxy = proxy

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get(PREFIX + "/faults", self._guard(self.list_faults))
        r.add_post(PREFIX + "/faults", self._guard(self.add_fault))
        r.add_put(PREFIX + "/faults/{id}", self._guard(self.put_fault))
        r.add_patch(PREFIX + "/faults/{id}", self._guard(self.patch_fault))
        r.add_delete(PREFIX + "/faults/{id}", self._guard(self.delete_fault))
        r.add_post(PREFIX + "/load", self._guard(self.load))
        r.add_post(PREFIX + "/reset", self._guard(self.reset))
        r.add_get(PREFIX + "/status", self._guard(self.status))
        r.add_get(PREFIX + "/journal", self._guard(self.journal))

    def _allowed(self, request: web.Request) -> bool:
        token = self.proxy.token
        if token:
            return token_ok(request, token, "x-loadkit-chaos-token")
        peer = request.remote or ""
        try:
            return ipaddress.ip_address(peer).is_loopback
        except ValueError:
            return peer.startswith("unix") or peer == ""

    def _guard(self, handler):  # type: ignore[no-untyped-def]
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self._allowed(request):
                return _err(403, "the chaos control API needs the proxy's token")
            try:
                return await handler(request)
            except FaultSpecError as exc:
                return _err(400, str(exc))
            except BodyRejected as exc:
                resp = _err(exc.status, str(exc), exc.code)
                resp.force_close()  # the rest of the body is not worth reading
                return resp
            except ClientGone:
                return web.Response()  # nobody to answer (logged at debug level)

        return guarded

    async def _json(self, request: web.Request) -> Any:
        """JSON, or YAML when the content type says so (a fault file posted as it is)."""
        raw = await read_body(request, self.proxy.max_body) or b"null"
        try:
            return parse_document(raw, "yaml" in request.content_type)
        except ValueError as exc:
            raise FaultSpecError(str(exc)) from None

    async def list_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": [f.to_json() for f in self.proxy.faults.all()]})

    async def add_fault(self, request: web.Request) -> web.Response:
        obj = await self._json(request)
        spec = fault_from_json(obj, f"fault-{len(self.proxy.faults) + 1}")
        if spec.id in self.proxy.faults:
            return _err(409, f"fault {spec.id!r} is already active (PUT replaces it)")
        await self.proxy.put(spec)
        return web.json_response({"fault": spec.to_json()}, status=201)

    async def put_fault(self, request: web.Request) -> web.Response:
        obj = await self._json(request)
        if not isinstance(obj, dict):
            raise FaultSpecError("a fault is a mapping")
        obj = {**obj, "id": request.match_info["id"]}
        spec = fault_from_json(obj)
        event = await self.proxy.put(spec)
        return web.json_response({"fault": spec.to_json(), "event": event})

    async def patch_fault(self, request: web.Request) -> web.Response:
        fid = request.match_info["id"]
        current = self.proxy.faults.get(fid)
        if current is None:
            return _err(404, f"no active fault {fid!r}")
        obj = await self._json(request)
        if not isinstance(obj, dict):
            raise FaultSpecError("a patch is a mapping")
        if ("kind" in obj and obj["kind"] != current.kind) or obj.get("id", fid) != fid:
            raise FaultSpecError("a patch cannot change a fault's id or kind (PUT replaces it)")
        merged = current.to_json()
        for key, value in obj.items():
            if key in ("where", "params") and isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
        spec = fault_from_json(merged)
        await self.proxy.put(spec)
        return web.json_response({"fault": spec.to_json(), "event": "update"})

    async def delete_fault(self, request: web.Request) -> web.Response:
        fid = request.match_info["id"]
        if not await self.proxy.remove(fid):
            return _err(404, f"no active fault {fid!r}")
        return web.json_response({"removed": fid})

    async def load(self, request: web.Request) -> web.Response:
        obj = await self._json(request)
        items = obj.get("faults") if isinstance(obj, dict) else obj
        if not isinstance(items, list):
            raise FaultSpecError('expected {"faults": [...]} or a list of faults')
        specs = [fault_from_json(o, f"fault-{i + 1}") for i, o in enumerate(items)]
        ids = [s.id for s in specs]
        if len(set(ids)) != len(ids):
            raise FaultSpecError("fault ids must be unique")
        await self.proxy.replace_all(specs)
        return web.json_response({"faults": [s.to_json() for s in specs]})

    async def reset(self, request: web.Request) -> web.Response:
        await self.proxy.reset()
        return web.json_response({"status": "reset"})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.proxy.status())

    async def journal(self, request: web.Request) -> web.Response:
        return web.json_response({"journal": self.proxy.journal})
