"""Run-time control for drills: `GET/PATCH /admin/config`, `POST /admin/reset`.

PATCH takes profile keys at the top level (all regions) and/or under `regions.NAME`, plus
`down: "refuse" | "503" | "overloaded" | false` to take a region down (or overload it) or
bring it back. Everything is
validated before anything changes, so a bad request changes nothing.

With a token (`--admin-token` / `LOADKIT_MOCK_ADMIN_TOKEN`) every route needs
`Authorization: Bearer TOKEN` or `x-loadkit-mock-token: TOKEN` (403 otherwise), checked as
the chaos proxy checks its control API's token; without one the API is open, as before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from loadkit.errors import UserError
from loadkit.serving.control_token import token_ok
from mocks.body import read_body
from mocks.errors import ApiError
from mocks.profile import Profile, apply_overrides

if TYPE_CHECKING:
    from mocks.server import MockServer

DOWN_MODES = {
    False: False,
    None: False,
    "refuse": "refuse",
    "503": "503",
    503: "503",
    "overloaded": "overloaded",
}
FIXED_KEYS = ("port", "name")
TOKEN_HEADER = "x-loadkit-mock-token"
MAX_BODY_BYTES = 1 << 20  # a PATCH is a few keys; aiohttp's own default limit

AdminHandler = Callable[[web.Request], Awaitable[web.Response]]


def _profile_dict(p: Profile) -> dict[str, Any]:
    out = json.loads(json.dumps(dataclasses.asdict(p)))
    out["api_keys"] = [f"***{k[-4:]}" if len(k) > 8 else "***" for k in p.api_keys]  # no secrets
    return out


def snapshot(server: MockServer) -> dict[str, Any]:
    return {
        "url": server.url,
        "seed": server.seed,
        # leak checks for tests and drills: asyncio tasks and open client connections
        "tasks": len(asyncio.all_tasks()),
        "connections": server.open_connections(),
        "regions": {
            name: {
                "url": r.url,
                "port": r.port,
                "state": "down" if r.down else "up",
                "down": r.down,
                "running": r.metrics.running,
                "waiting": r.metrics.waiting,
                "config": _profile_dict(r.profile),
            }
            for name, r in server.regions.items()
        },
    }


class AdminApi:
    def __init__(self, server: MockServer) -> None:
        self.server = server

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/admin/config", self._guard(self.get_config))
        app.router.add_patch("/admin/config", self._guard(self.patch_config))
        app.router.add_post("/admin/reset", self._guard(self.reset))

    def _guard(self, handler: AdminHandler) -> AdminHandler:
        """Refuse callers without the admin token, when one is set."""

        async def guarded(request: web.Request) -> web.Response:
            token = self.server.admin_token
            if token and not token_ok(request, token, TOKEN_HEADER):
                raise ApiError(
                    403,
                    "admin: this API needs the mock's admin token (Authorization: Bearer "
                    f"TOKEN or {TOKEN_HEADER}: TOKEN)",
                    code="invalid_admin_token",
                )
            return await handler(request)

        return guarded

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(snapshot(self.server))

    async def patch_config(self, request: web.Request) -> web.Response:
        raw = await read_body(request, MAX_BODY_BYTES, self.server.timeouts.body_s)
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, RecursionError):  # RecursionError: nesting too deep to parse
            raise ApiError(400, "admin: the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise ApiError(400, "admin: the body must be a JSON object")
        plans = self._plan(body)
        for name, (profile, down) in plans.items():
            region = self.server.regions[name]
            if profile is not None:
                region.configure(profile)
            if down is not None:
                await self.server.set_down(name, down)
        return web.json_response(snapshot(self.server))

    def _plan(self, body: dict[str, Any]) -> dict[str, tuple[Profile | None, Any]]:
        """Validate the whole change first: (new profile or None, down mode or None) per region."""
        regions = self.server.regions
        per_region = body.get("regions") or {}
        if not isinstance(per_region, dict):
            raise ApiError(400, "admin: regions: expected an object", param="regions")
        for name in per_region:
            if name not in regions:
                raise ApiError(
                    404,
                    f"admin: unknown region {name!r} (have {', '.join(regions)})",
                    param=f"regions.{name}",
                )
        top = {k: v for k, v in body.items() if k != "regions"}
        out: dict[str, tuple[Profile | None, Any]] = {}
        for name, region in regions.items():
            over = dict(top)
            sub = per_region.get(name) or {}
            if not isinstance(sub, dict):
                raise ApiError(400, f"admin: regions.{name}: expected an object")
            over.update(sub)
            down: Any = None
            if "down" in over:
                raw = over.pop("down")
                if isinstance(raw, bool) and raw:
                    raw = "refuse"
                if raw not in DOWN_MODES:
                    raise ApiError(
                        400,
                        f'admin: regions.{name}.down: expected "refuse", '
                        f'"503", "overloaded" or false, got {raw!r}',
                        param="down",
                    )
                down = DOWN_MODES[raw]
            for key in FIXED_KEYS:
                if key in over:
                    raise ApiError(400, f"admin: {key} cannot change at run time", param=key)
            profile = None
            if over:
                try:
                    profile = apply_overrides(region.profile, over, f"regions.{name}")
                except UserError as exc:
                    raise ApiError(400, f"admin: {exc}") from None
            out[name] = (profile, down)
        return out

    async def reset(self, request: web.Request) -> web.Response:
        for name, region in self.server.regions.items():
            region.reset()
            if region.down:
                await self.server.set_down(name, False)
        return web.json_response(snapshot(self.server))
