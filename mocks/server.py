"""The mock's listeners: a front listener plus one listener per region.

The front listener (the printed URL) serves the first region at `/v1/*`, any region at
`/REGION/v1/*`, and `/admin/*`, `/metrics`, `/health`. Each region also has its own
listener serving `/v1/*`, `/metrics` and `/health`, so that taking a region down with
`refuse` really refuses connections; bringing it back reopens the same port.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from loadkit.serving.aio import listen
from mocks import metrics
from mocks.admin import AdminApi
from mocks.anthropic_api import AnthropicApi
from mocks.azure_api import AzureApi
from mocks.common import RegionLookup, api_errors, stamp_headers
from mocks.conn import GuardedRunner
from mocks.copilot_api import CopilotApi
from mocks.errors import ApiError
from mocks.openai_api import OpenAIApi
from mocks.profile import MockConfig
from mocks.region import Region

SHUTDOWN_TIMEOUT_S = 2.0


def _app() -> web.Application:
    # auto_decompress off: mocks.body decodes Content-Encoding itself, bounded by the limit
    app = web.Application(
        middlewares=[api_errors],
        handler_args={"max_field_size": 65536, "auto_decompress": False},
    )
    app.on_response_prepare.append(stamp_headers)
    return app


def _url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


class MockServer:
    def __init__(
        self, config: MockConfig, host: str = "127.0.0.1", admin_token: str | None = None
    ) -> None:
        self.host = host
        self.seed = config.seed
        self.timeouts = config.timeouts
        self.admin_token = admin_token or None
        self.regions: dict[str, Region] = {
            name: Region(name, i, profile, config.seed)
            for i, (name, profile) in enumerate(config.regions)
        }
        self.first = next(iter(self.regions.values()))
        self.url = ""
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ routing helpers

    def _front_region(self, request: web.Request) -> Region:
        name = request.match_info.get("region")
        if name is None:
            return self.first
        region = self.regions.get(name)
        if region is None:
            raise ApiError(
                404,
                f"Unknown region {name!r} (regions: {', '.join(self.regions)}).",
                code="unknown_url",
            )
        return region

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _metrics_handler(self, regions: list[Region]):
        async def handler(request: web.Request) -> web.Response:
            rows = [(r.name, _model_label(r), r.metrics) for r in regions]
            return web.Response(
                text=metrics.render(rows),
                content_type="text/plain",
                charset="utf-8",
                headers={"X-Content-Type-Options": "nosniff"},
            )

        return handler

    # ------------------------------------------------------------ lifecycle

    async def _listen(self, app: web.Application, port: int) -> tuple[web.AppRunner, int]:
        t = self.timeouts
        return await listen(
            app,
            self.host,
            port,
            SHUTDOWN_TIMEOUT_S,
            GuardedRunner,
            header_timeout_s=t.header_s,
            keepalive_timeout=t.idle_s,
        )

    def _apis(self, lookup: RegionLookup) -> list[Any]:
        """Every API's routes, each finding its region with `lookup`."""
        body_s = self.timeouts.body_s
        anthropic = AnthropicApi(lookup, body_s)
        return [
            OpenAIApi(lookup, body_s, anthropic_models=anthropic.models),
            anthropic,
            AzureApi(lookup, body_s),
            CopilotApi(lookup, body_s),
        ]

    def _region_app(self, region: Region) -> web.Application:
        app = _app()
        for api in self._apis(lambda request: region):
            api.add_routes(app)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics_handler([region]))
        return app

    async def start(self, port: int = 0) -> str:
        for region in self.regions.values():
            region.engine.start()
        app = _app()
        apis = self._apis(self._front_region)
        for api in apis:
            api.add_routes(app)
        AdminApi(self).add_routes(app)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics_handler(list(self.regions.values())))
        for api in apis:
            api.add_routes(app, prefix="/{region}")
        self._runner, bound = await self._listen(app, port)
        self.url = _url(self.host, bound)
        for region in self.regions.values():
            await self._open_region(region)
        return self.url

    async def _open_region(self, region: Region) -> None:
        region.runner, region.port = await self._listen(self._region_app(region), region.port)
        region.url = _url(self.host, region.port)

    async def set_down(self, name: str, mode: str | bool) -> None:
        """`refuse`: close the region's listener; `503`: answer 503; `overloaded`: answer
        each API's overload error and end running streams with it; False: back up."""
        region = self.regions[name]
        if mode == region.down:
            return
        if mode:
            region.down = mode
            # overloaded: the handlers end their requests in their API's words; else cut
            region.engine.abort_all(cut=mode != "overloaded")
            if mode == "refuse" and region.runner is not None:
                runner, region.runner = region.runner, None
                await runner.cleanup()
            elif mode != "refuse" and region.runner is None:
                await self._open_region(region)
        else:
            if region.runner is None:
                await self._open_region(region)
            region.down = False

    def open_connections(self) -> int:
        runners = [self._runner, *(r.runner for r in self.regions.values())]
        return sum(len(r.server.connections) for r in runners if r is not None and r.server)

    async def stop(self) -> None:
        for region in self.regions.values():
            await region.engine.stop()
        for region in self.regions.values():
            if region.runner is not None:
                await region.runner.cleanup()
                region.runner = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _model_label(region: Region) -> str:
    chat = [m.id for m in region.profile.models if m.kind == "chat"]
    return chat[0] if chat else region.profile.models[0].id
