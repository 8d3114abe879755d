"""The chaos proxy: an aiohttp reverse proxy that breaks OpenAI-style traffic on purpose.

Listeners: the front listener (the printed URL) proxies to the default upstream, or to the
upstream of the region named in `x-loadkit-region`, and serves the control API under
`/chaos/` and `/health`. Each `--region NAME=URL` also gets a listener of its own, so a
region outage can close it and really refuse connections; ending the outage reopens the
same port.

Each `--upstream-listener NAME:PORT=URL` listens on its own fixed port: the address a
gateway's config points at instead of an upstream of its own, so faults with
`where.upstream: NAME` act behind the gateway. Its answers carry `x-loadkit-upstream: NAME`,
and every request a fault touches is journaled with the client's `x-loadkit-attempt` key
(`--hits FILE`), so a gateway that drops the fault tag cannot hide a fault.

Streams pass through chunk by chunk, unbuffered, as raw bytes; only a response that a
mid-stream fault selected is split into SSE frames. Headers are copied but for hop-by-hop
ones. A response a fault touched carries `x-loadkit-fault: <fault id>`.

What each fault kind does is registered by name in `before_content.py` and `mid_stream.py`
(the kinds themselves: `kinds.py`); an upstream body travels in a `relay.RelaySink`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import posixpath
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

import numpy as np
from aiohttp import ClientConnectionResetError, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from multidict import CIMultiDict

from loadkit.apis.base import NDJSON, SSE, TEXT, framing_of
from loadkit.apis.registry import API_HEADER, api_of_request
from loadkit.chaos import before_content, mid_stream, responses
from loadkit.chaos import upstream as up
from loadkit.chaos.body import (
    MAX_BODY_BYTES,
    BodyRejected,
    ClientGone,
    decoded_by_server,
    model_of,
    read_body,
)
from loadkit.chaos.conn import reset as _reset
from loadkit.chaos.faults import (
    FaultSet,
    FaultSpec,
    FaultSpecError,
    RequestInfo,
    key_digest,
    parse_header,
)
from loadkit.chaos.journals import FaultJournalFile, HitJournal
from loadkit.chaos.kinds import MID_STREAM
from loadkit.chaos.relay import RelaySink
from loadkit.results.faults_schema import ATTEMPT_HEADER
from loadkit.serving.aio import listen
from loadkit.serving.guard import GuardedRunner

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_DROP_REQUEST = HOP_BY_HOP | {"host", "content-length", "expect", "x-loadkit-chaos"}
_DROP_RESPONSE = HOP_BY_HOP | {"content-length"}
SHUTDOWN_TIMEOUT_S = 1.0
OUTAGE_SHUTDOWN_S = 0.1  # a region going down: its connections are reset, handlers cut short
LOW_WATER = 256 << 10
FAULT_HEADER = "x-loadkit-fault"
HEADER_TIMEOUT_S = 10.0  # as the mock's: connection start -> request headers complete
UPSTREAM_HEADER = "x-loadkit-upstream"
ADMIN_REFUSED = (
    "the chaos proxy does not forward the upstream's /admin API; call the upstream directly"
)

log = logging.getLogger("loadkit.chaos")
_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass
class RegionListener:
    name: str
    upstream: str
    port: int = 0
    url: str = ""
    role: str = "region"  # or "upstream": a fixed port behind a gateway
    runner: web.AppRunner | None = None
    inflight: set[asyncio.Transport] = field(default_factory=set)

    @property
    def origin(self) -> up.Origin:
        return up.Origin.parse(self.upstream)

    @property
    def down(self) -> bool:
        return self.runner is None


def _url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _admin_path(raw_path: str) -> bool:
    """Whether a request target reaches the upstream's `/admin` API once the upstream has
    decoded it: percent-escapes, dot segments, repeated slashes and case all undone."""
    path = raw_path if raw_path.startswith("/") else urlsplit(raw_path).path
    path = path.split("?", 1)[0]
    for _ in range(3):  # %2561 -> %61 -> a
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    path = posixpath.normpath(re.sub(r"/+", "/", "/" + path.replace("\\", "/"))).lower()
    return path == "/admin" or path.startswith("/admin/")


class _ClientFaultFilter(logging.Filter):
    """aiohttp logs a full traceback when a client sends a malformed request or leaves
    mid-body; that is the client's doing, not a bug of the proxy: one debug line instead."""

    CLIENT_FAULTS = (ConnectionError, HttpProcessingError, RequestPayloadError)

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, self.CLIENT_FAULTS):
            detail = " ".join(str(exc).split())[:200]
            log.debug("%s: %s: %s", record.getMessage(), type(exc).__name__, detail)
            return False
        return True


def quiet_client_faults() -> None:
    """Install `_ClientFaultFilter` on aiohttp's server logger (once per process)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _ClientFaultFilter) for f in server_log.filters):
        server_log.addFilter(_ClientFaultFilter())


def _uncancelled(fn: Callable[_P, Awaitable[_T]]) -> Callable[_P, Awaitable[_T]]:
    """Run a change of the fault set to its end even if the control client hangs up (its
    handler is cancelled then): a half-applied outage would leave a listener half closed."""

    @functools.wraps(fn)
    async def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return await asyncio.shield(fn(*args, **kwargs))  # type: ignore[arg-type]

    return run


def _error_shape(status: int, message: str, client_error: bool) -> dict[str, Any]:
    etype = "invalid_request_error" if client_error else "proxy_error"
    return {"error": {"message": message, "type": etype, "param": None, "code": None}}


def _client_error(
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    etype: str = "chaos_error",
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An answer from the proxy itself (not the upstream), in OpenAI's error shape."""
    body = responses.openai_error(message, etype, param, code)
    resp = web.Response(body=body, status=status, headers=headers)
    resp.content_type = "application/json"
    return resp


def _rejected(exc: BodyRejected) -> web.Response:
    """The 4xx for a body the proxy will not take; the connection closes after it, so the
    rest of a huge body is never read (aiohttp would otherwise drain it for seconds)."""
    resp = _client_error(exc.status, str(exc), exc.code)
    resp.force_close()
    return resp


def _upstream_headers(request: web.Request, identity: bool) -> list[tuple[str, str]]:
    """The client's headers as the upstream gets them: hop-by-hop ones dropped, and
    `Content-Encoding` too when aiohttp decoded the body (the upstream gets it plain, so it
    must not try to decompress it again). `identity`: the answer must come uncompressed."""
    drop = _DROP_REQUEST | {"content-encoding"} if decoded_by_server(request) else _DROP_REQUEST
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in drop]
    if identity:  # frames must be readable
        headers = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
        headers.append(("Accept-Encoding", "identity"))
    return headers


class ChaosProxy:
    """One proxy process: listeners, the active fault set, counters and a change journal."""

    def __init__(
        self,
        upstream: str,
        regions: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        seed: int = 0,
        token: str | None = None,
        *,
        max_body: int = MAX_BODY_BYTES,
        upstream_listeners: Mapping[str, tuple[int, str]] | None = None,
        hits: HitJournal | None = None,
        journal_file: FaultJournalFile | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.max_body = max_body
        self.host = host
        self.token = token
        self.faults = FaultSet()
        self.rng = np.random.default_rng(seed)
        self.regions = {n: RegionListener(n, u.rstrip("/")) for n, u in (regions or {}).items()}
        self.upstream_listeners = {
            n: RegionListener(n, u.rstrip("/"), port=p, role="upstream")
            for n, (p, u) in (upstream_listeners or {}).items()
        }
        self.hits = hits
        self.journal_file = journal_file
        self.default_region = next(iter(self.regions), "")
        self.url = ""
        self.requests_total = 0
        self.active_streams = 0
        self.in_flight = 0  # proxied requests being handled (body, delay, upstream, relay)
        self.upstream_errors = 0
        self.header_hits: dict[str, int] = {}
        self.journal: list[dict[str, Any]] = []
        self._front: web.AppRunner | None = None
        self.origin = up.Origin.parse(self.upstream)
        self.pool = up.Pool()
        self._lock = asyncio.Lock()
        self._t0 = time.perf_counter()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        from loadkit.chaos.control import ControlApi

        quiet_client_faults()
        app = self._app()
        ControlApi(self).add_routes(app)
        app.router.add_route("*", "/{tail:.*}", self._front_handler)
        self._front, bound = await self._listen(app, port)
        self.url = _url(self.host, bound)
        for listener in self._listeners():
            await self._open_region(listener)
        return self.url

    def _listeners(self) -> list[RegionListener]:
        return [*self.regions.values(), *self.upstream_listeners.values()]

    async def stop(self) -> None:
        for listener in self._listeners():
            if listener.runner is not None:
                await listener.runner.cleanup()
                listener.runner = None
        if self._front is not None:
            await self._front.cleanup()
            self._front = None
        self.pool.close()

    def _app(self) -> web.Application:
        # lingering_time: after a 413 aiohttp drains the unread body; 2 s of that is enough.
        handler_args = {"max_field_size": 65536, "lingering_time": 2.0}
        app = web.Application(handler_args=handler_args, client_max_size=self.max_body)
        app.router.add_get("/health", self._health)
        return app

    async def _listen(
        self, app: web.Application, port: int, shutdown_s: float = SHUTDOWN_TIMEOUT_S
    ) -> tuple[web.AppRunner, int]:
        # A client that leaves cancels its handler: a delayed request stops waiting, its
        # upstream request is aborted (no hour-long latency fault held for nobody). A client
        # whose headers never finish (slowloris) gets a 408 after HEADER_TIMEOUT_S, one that
        # does not speak HTTP/1.x (an HTTP/0.9 request line) a 400, both in OpenAI's shape.
        return await listen(
            app,
            self.host,
            port,
            shutdown_s,
            GuardedRunner,
            header_timeout_s=HEADER_TIMEOUT_S,
            shape=_error_shape,
            handler_cancellation=True,
        )

    async def _open_region(self, listener: RegionListener) -> None:
        app = self._app()

        async def handler(request: web.Request) -> web.StreamResponse:
            region = listener.name if listener.role == "region" else ""
            return await self._proxy(request, listener, region)

        app.router.add_route("*", "/{tail:.*}", handler)
        listener.runner, listener.port = await self._listen(app, listener.port, OUTAGE_SHUTDOWN_S)
        listener.url = _url(self.host, listener.port)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "faults": len(self.faults)})

    # -- fault set changes (the control API calls these) ------------------------------------

    def now_s(self) -> float:
        return time.perf_counter() - self._t0

    def log(self, event: str, spec: FaultSpec | None) -> None:
        entry: dict[str, Any] = {"t_s": round(self.now_s(), 6), "t_epoch": time.time()}
        entry["event"] = event
        if spec is not None:
            entry["fault"] = spec.to_json()
        self.journal.append(entry)
        if len(self.journal) > 100_000:
            del self.journal[:50_000]
        if self.journal_file is not None:
            self.journal_file.write(entry["t_s"] * 1000.0, entry["t_epoch"], event, spec)

    @_uncancelled
    async def put(self, spec: FaultSpec) -> str:
        async with self._lock:
            event = "update" if spec.id in self.faults else "start"
            self.faults.put(spec)
            self.log(event, spec)
            await self._apply_outages()
            return event

    @_uncancelled
    async def remove(self, fid: str) -> bool:
        async with self._lock:
            spec = self.faults.get(fid)
            if spec is None:
                return False
            self.faults.remove(fid)
            self.log("end", spec)
            await self._apply_outages()
            return True

    @_uncancelled
    async def replace_all(self, specs: list[FaultSpec]) -> None:
        async with self._lock:
            self.faults.clear()
            self.log("clear", None)
            for spec in specs:
                self.faults.put(spec)
                self.log("start", spec)
            await self._apply_outages()

    @_uncancelled
    async def reset(self) -> None:
        async with self._lock:
            self.faults.clear()
            self.faults.reset_counters()
            self.header_hits.clear()
            self.log("clear", None)
            await self._apply_outages()

    async def _apply_outages(self) -> None:
        """Close the listener of every region under a full outage, reopen the others."""
        outages = [
            f
            for f in self.faults.all()
            if f.kind == "region_outage" and f.rate >= 1.0 and f.max_hits is None
        ]
        down = {("region", f.where.region) for f in outages if f.where.upstream is None}
        down |= {("upstream", f.where.upstream) for f in outages if f.where.upstream is not None}
        for listener in self._listeners():
            name = listener.name
            if (listener.role, name) in down and listener.runner is not None:
                runner, listener.runner = listener.runner, None
                for transport in list(listener.inflight):
                    _reset(transport)
                await runner.cleanup()
                for f in outages:
                    scope = "upstream" if f.where.upstream is not None else "region"
                    if (scope, f.where.upstream or f.where.region) == (listener.role, name):
                        self.faults.counters[f.id].hits += 1
                        self._journal_hit(f, None, listener)
            elif (listener.role, name) not in down and listener.runner is None:
                await self._open_region(listener)

    # -- the proxy path ---------------------------------------------------------------------

    async def _front_handler(self, request: web.Request) -> web.StreamResponse:
        name = request.headers.get("x-loadkit-region", "")
        listener = self.regions.get(name)
        return await self._proxy(request, listener, name or self.default_region)

    def _request_info(
        self, request: web.Request, region: str, body: bytes, upstream: str = ""
    ) -> RequestInfo:
        model = model_of(body) if self.faults.needs_model else ""
        digest = ""
        if self.faults.needs_key:
            auth = request.headers.get("authorization", "")
            key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
            key = key or request.headers.get("api-key", "")
            digest = key_digest(key) if key else ""
        return RequestInfo(
            region=region,
            upstream=upstream,
            path=request.path,
            workload=request.headers.get("x-loadkit-workload", ""),
            model=model,
            api_key_sha256=digest,
        )

    def _pick(self, request: web.Request, info: RequestInfo) -> FaultSpec | None:
        header = request.headers.get("x-loadkit-chaos")
        if header is not None:
            spec = parse_header(header)
            if spec.max_hits is not None:
                n = self.header_hits.get(header, 0)
                if n >= spec.max_hits:
                    return None
                if len(self.header_hits) > 10_000:
                    self.header_hits.clear()
                self.header_hits[header] = n + 1
            return spec if self.rng.random() < spec.rate else None
        if not len(self.faults):
            return None
        return self.faults.pick(info, float(self.rng.random()))

    def _hit(self, spec: FaultSpec) -> None:
        c = self.faults.counters.get(spec.id)
        if c is not None and self.faults.get(spec.id) is spec:
            c.hits += 1

    def _journal_hit(
        self, spec: FaultSpec, request: web.Request | None, listener: RegionListener | None
    ) -> None:
        """One row of the hit journal: the fault, and the attempt key the request carried."""
        if self.hits is None:
            return
        attempt = request.headers.get(ATTEMPT_HEADER, "") if request is not None else ""
        upstream = listener.name if listener is not None and listener.role == "upstream" else ""
        self.hits.write(self.now_s() * 1000.0, spec, attempt, upstream)

    async def _proxy(
        self, request: web.Request, listener: RegionListener | None, region: str
    ) -> web.StreamResponse:
        self.requests_total += 1
        if listener is not None and listener.down:
            # The front listener reaching a region under outage: as refused as it gets.
            _reset(request.transport)
            return web.Response()
        if _admin_path(request.raw_path):
            return _client_error(403, ADMIN_REFUSED, "admin_not_forwarded")
        self.in_flight += 1
        try:
            return await self._proxy_body(request, listener, region)
        finally:
            self.in_flight -= 1

    async def _proxy_body(
        self, request: web.Request, listener: RegionListener | None, region: str
    ) -> web.StreamResponse:
        try:
            body = await read_body(request, self.max_body)
            upstream = listener.name if listener is not None and listener.role == "upstream" else ""
            info = self._request_info(request, region, body, upstream)
            spec = self._pick(request, info)
        except BodyRejected as exc:
            return _rejected(exc)
        except ClientGone:
            return web.Response()  # nobody to answer
        except FaultSpecError as exc:
            return _client_error(
                400, f"x-loadkit-chaos: {exc}", "invalid_chaos_header", "x-loadkit-chaos"
            )
        transport = request.transport
        if listener is not None and transport is not None:
            listener.inflight.add(transport)  # type: ignore[arg-type]
        try:
            return await self._forward(request, listener, info, body, spec)
        finally:
            if listener is not None and transport is not None:
                listener.inflight.discard(transport)  # type: ignore[arg-type]

    async def _forward(
        self,
        request: web.Request,
        listener: RegionListener | None,
        info: RequestInfo,
        body: bytes,
        spec: FaultSpec | None,
    ) -> web.StreamResponse:
        extra_headers: dict[str, str] = {}
        if listener is not None and listener.role == "upstream":
            extra_headers[UPSTREAM_HEADER] = listener.name

        def hit(fault: FaultSpec) -> None:
            self._hit(fault)
            self._journal_hit(fault, request, listener)

        early = before_content.BEHAVIOURS.get(spec.kind) if spec is not None else None
        if spec is not None and early is not None:
            answer = await early(before_content.Call(request, body, self.rng, hit), spec)
            if answer is not None:
                if UPSTREAM_HEADER in extra_headers:
                    answer.headers[UPSTREAM_HEADER] = extra_headers[UPSTREAM_HEADER]
                return answer
            extra_headers[FAULT_HEADER] = spec.id  # let through, delayed: tagged
        origin = listener.origin if listener is not None else self.origin
        headers = _upstream_headers(request, spec is not None and spec.kind in MID_STREAM)
        try:
            conn, head, sink = await up.send(
                self.pool, origin, request.method, request.raw_path, headers, body, RelaySink
            )
        except up.UpstreamError as exc:
            self.upstream_errors += 1
            msg = f"chaos proxy: upstream {origin.scheme}://{origin.host_header} failed: {exc}"
            return _client_error(502, msg, etype="proxy_error", headers=extra_headers)
        assert isinstance(sink, RelaySink)
        sink.conn = conn
        try:
            return await self._relay(request, head, sink, spec, extra_headers, hit)
        finally:
            if not sink.finished:
                # We stopped reading early: this connection cannot be reused. (A finished
                # response's connection may already serve another request: never touch it.)
                conn.abort()

    async def _relay(
        self,
        request: web.Request,
        head: up.Head,
        sink: RelaySink,
        spec: FaultSpec | None,
        extra_headers: dict[str, str],
        hit: Callable[[FaultSpec], None],
    ) -> web.StreamResponse:
        headers: CIMultiDict[str] = CIMultiDict()
        for k, v in head.headers:
            if k.lower() not in _DROP_RESPONSE:
                headers.add(k, v)
        # every streamed framing passes through unbuffered (SSE, NDJSON, chunked text);
        # whole bodies (JSON answers, error pages) are read and answered whole
        framing = framing_of(head.get("content-type"))
        streamed = framing in (SSE, NDJSON, TEXT)
        old_client = request.version < (1, 1)
        mid = spec is not None and spec.kind in MID_STREAM
        if mid and streamed and head.status == 200:
            assert spec is not None
            extra_headers[FAULT_HEADER] = spec.id  # the hit is journaled when it acts
        else:
            mid = False
        for k, v in extra_headers.items():
            headers[k] = v
        if not streamed:
            try:
                data = await sink.read_all()
            except up.UpstreamError:
                self.upstream_errors += 1
                _reset(request.transport)
                return web.Response()
            return web.Response(body=data, status=head.status, reason=head.reason, headers=headers)
        resp = web.StreamResponse(status=head.status, reason=head.reason, headers=headers)
        if old_client:
            resp.force_close()  # HTTP/1.0 knows no chunks: the end of the body is the close
        self.active_streams += 1
        try:
            await resp.prepare(request)
            if mid:
                assert spec is not None
                api = api_of_request(request.path, request.headers.get(API_HEADER))
                stream = mid_stream.Stream(
                    request, resp, sink, api, framing or SSE, functools.partial(hit, spec)
                )
                await mid_stream.BEHAVIOURS[spec.kind](stream, spec)
            else:
                await self._pass_through(request, resp, sink, raw=not old_client)
        except (ConnectionResetError, ClientConnectionResetError):
            # the client left; the upstream connection is aborted by the caller
            log.debug("client %s left mid-stream", request.remote)
        except up.UpstreamError:
            self.upstream_errors += 1
            _reset(request.transport)  # the upstream broke mid-stream: so does the client's
        finally:
            self.active_streams -= 1
        return resp

    async def _pass_through(
        self, request: web.Request, resp: web.StreamResponse, sink: RelaySink, raw: bool = True
    ) -> None:
        """Body bytes go from the upstream socket to the client's in one callback each
        (`raw`: in chunked framing; else through aiohttp, which frames what the client reads)."""
        transport = request.transport
        writer = getattr(resp, "_payload_writer", None)
        send_headers = getattr(writer, "send_headers", None)
        if transport is None or send_headers is None or not raw:  # or an aiohttp without the hook
            async for piece in sink.chunks():
                await resp.write(piece)
            await resp.write_eof()
            return
        send_headers()
        sink.go_direct(transport)  # type: ignore[arg-type]
        while not sink.finished:
            await sink.wait(1.0)
            if transport.is_closing():
                return
            if sink.paused:
                while transport.get_write_buffer_size() > LOW_WATER and not transport.is_closing():
                    await asyncio.sleep(0.005)
                sink.unpause()
        if sink.error is not None:
            raise sink.error
        await resp.write_eof()

    # -- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        faults = []
        for spec in self.faults.all():
            c = self.faults.counters[spec.id]
            faults.append({**spec.to_json(), "considered": c.considered, "hits": c.hits})
        return {
            "url": self.url,
            "uptime_s": round(self.now_s(), 3),
            "requests": self.requests_total,
            "active_streams": self.active_streams,
            "in_flight": self.in_flight,
            "upstream_errors": self.upstream_errors,
            "faults": faults,
            "regions": {
                n: {"url": r.url, "down": r.down, "inflight": len(r.inflight)}
                for n, r in self.regions.items()
            },
            "upstreams": {
                n: {"url": r.url, "forwards_to": r.upstream, "down": r.down}
                for n, r in self.upstream_listeners.items()
            },
        }
