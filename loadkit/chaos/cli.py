"""`loadkit chaos` / `python -m loadkit.chaos`: run the chaos proxy until SIGINT or SIGTERM.

The first stdout line is the front listener's base URL (flushed); one `region NAME URL`
line per `--region` follows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loadkit.chaos.body import MAX_BODY_BYTES
from loadkit.chaos.faults import FaultSpec, FaultSpecError, fault_from_json
from loadkit.errors import UserError
from loadkit.serving.aio import announce, wait_for_stop_signal

TOKEN_ENV = "LOADKIT_CHAOS_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="loadkit chaos",
        description="Run the LLM-aware fault-injection proxy in front of an OpenAI-compatible "
        "upstream.",
    )
    p.add_argument("--upstream", required=True, help="base URL of the upstream (http or https)")
    p.add_argument(
        "--region",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="a listener of its own for region NAME, proxying to URL (repeatable)",
    )
    p.add_argument(
        "--upstream-listener",
        action="append",
        default=[],
        metavar="NAME:PORT=URL",
        help="listen on PORT for upstream NAME behind a gateway (the address the gateway's "
        "config points at) and forward to URL; faults select it with where.upstream "
        "(repeatable)",
    )
    p.add_argument(
        "--journal",
        default=None,
        metavar="FILE",
        help="append every change of the fault set to FILE (faults.csv's format, with "
        "wall-clock times): `loadkit report RUN --faults FILE` places it on a run's clock",
    )
    p.add_argument(
        "--hits",
        default=None,
        metavar="FILE",
        help="append one row per request a fault touched, with the client's x-loadkit-attempt",
    )
    p.add_argument("--port", type=int, default=0, help="front listener port (0 = OS chooses)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--faults", default=None, help="YAML/JSON file of faults to start with")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault draws (default 0)")
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=MAX_BODY_BYTES / (1 << 20),
        help="largest request body accepted, in MiB (default %(default)g; larger: 413)",
    )
    p.add_argument(
        "--token",
        default=None,
        help=f"control API token (default: ${TOKEN_ENV}; none = loopback callers only)",
    )
    return p


def _check_url(url: str, what: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise UserError(f"{what}: expected an http:// or https:// URL, got {url!r}")
    return url


def load_fault_file(path: str) -> list[FaultSpec]:
    """A list of faults, or `{faults: [...]}`, in the control API's shape (YAML or JSON)."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        obj = yaml.safe_load(text) if not path.endswith(".json") else json.loads(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise UserError(f"{path}: not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
    items = obj.get("faults") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        raise UserError(f"{path}: expected a list of faults or a mapping with `faults:`")
    specs: list[FaultSpec] = []
    for i, item in enumerate(items):
        try:
            specs.append(fault_from_json(item, f"fault-{i + 1}"))
        except FaultSpecError as exc:
            raise UserError(f"{path}: faults[{i}]: {exc}") from None
    if len({s.id for s in specs}) != len(specs):
        raise UserError(f"{path}: fault ids must be unique")
    return specs


async def _serve(
    args: argparse.Namespace,
    regions: dict[str, str],
    specs: list[FaultSpec],
    upstreams: dict[str, tuple[int, str]],
) -> int:
    from loadkit.chaos.journals import FaultJournalFile, HitJournal
    from loadkit.chaos.proxy import ChaosProxy

    token = args.token or os.environ.get(TOKEN_ENV) or None
    max_body = int(args.max_body_mb * (1 << 20))
    journal = FaultJournalFile(Path(args.journal)) if args.journal else None
    hits = HitJournal(Path(args.hits)) if args.hits else None
    proxy = ChaosProxy(
        args.upstream,
        regions,
        args.host,
        args.seed,
        token,
        max_body=max_body,
        upstream_listeners=upstreams,
        hits=hits,
        journal_file=journal,
    )
    try:
        try:
            url = await proxy.start(args.port)
        except OSError as exc:
            raise UserError(f"cannot listen: {exc.strerror or exc}") from None
        if specs:
            await proxy.replace_all(specs)
        announce(url, {name: listener.url for name, listener in proxy.regions.items()})
        for name, listener in proxy.upstream_listeners.items():
            print(f"upstream {name} {listener.url} -> {listener.upstream}", flush=True)
        await wait_for_stop_signal()
        if journal is not None:
            proxy.log("clear", None)  # the faults end with the proxy: close their windows
    finally:
        with contextlib.suppress(Exception):
            await proxy.stop()
        for sink in (journal, hits):
            if sink is not None:
                sink.close()
    return 0


def parse_upstream_listeners(items: Sequence[str]) -> dict[str, tuple[int, str]]:
    """`NAME:PORT=URL` items -> {name: (port, url)}; one clear line for each mistake."""
    out: dict[str, tuple[int, str]] = {}
    for item in items:
        head, sep, url = item.partition("=")
        name, colon, port_text = head.rpartition(":")
        if not sep or not colon or not name:
            raise UserError(f"--upstream-listener: expected NAME:PORT=URL, got {item!r}")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise UserError(f"--upstream-listener {name}: port must be 1-65535, got {port_text!r}")
        if name in out:
            raise UserError(f"--upstream-listener: {name!r} given twice")
        port = int(port_text)
        if any(p == port for p, _ in out.values()):
            raise UserError(f"--upstream-listener {name}: port {port} is given twice")
        out[name] = (port, _check_url(url, f"--upstream-listener {name}"))
    return out


def _loop_runner() -> Callable[[Any], int]:
    """uvloop's `run` when installed (`pip install loadkit[fast]`; LOADKIT_CHAOS_LOOP=asyncio
    opts out), else asyncio's.

    Only chosen here, not run: a loop started inside `except ImportError` would chain that
    ImportError as the context of every traceback it ever logs.
    """
    if os.environ.get("LOADKIT_CHAOS_LOOP") == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run  # type: ignore[no-any-return]


def _run(coro: Any) -> int:
    return _loop_runner()(coro)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    try:
        _check_url(args.upstream, "--upstream")
        regions: dict[str, str] = {}
        for item in args.region:
            name, sep, url = item.partition("=")
            if not sep or not name:
                raise UserError(f"--region: expected NAME=URL, got {item!r}")
            if name in regions:
                raise UserError(f"--region: {name!r} given twice")
            regions[name] = _check_url(url, f"--region {name}")
        if not args.max_body_mb > 0:
            raise UserError(f"--max-body-mb: must be > 0, got {args.max_body_mb:g}")
        specs = load_fault_file(args.faults) if args.faults else []
        upstreams = parse_upstream_listeners(args.upstream_listener)
        return _run(_serve(args, regions, specs, upstreams))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
