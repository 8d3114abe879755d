"""What loadkit's two aiohttp servers (the mock provider, the chaos proxy) share: binding a
listener, announcing its URL on stdout for `loadkit.serving.launch`, and running until a signal.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from loadkit.errors import UserError


async def listen(
    app: web.Application,
    host: str,
    port: int,
    shutdown_s: float,
    runner_class: type[web.AppRunner] = web.AppRunner,
    **runner_kwargs: Any,
) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port (0 = the OS chooses); returns the runner and the bound port.

    `runner_class` and `runner_kwargs` (e.g. `keepalive_timeout`) let a server choose its
    connection handling.
    """
    runner = runner_class(
        app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_s, **runner_kwargs
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=4096)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return runner, int(runner.addresses[0][1])


def announce(url: str, regions: Mapping[str, str]) -> None:
    """The base URL first (scripts and `serving.launch` read it), then `region NAME URL` lines."""
    print(url, flush=True)
    for name, region_url in regions.items():
        print(f"region {name} {region_url}", flush=True)


async def wait_for_stop_signal() -> None:
    """Return on SIGINT or SIGTERM, so the caller can close its listeners cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
