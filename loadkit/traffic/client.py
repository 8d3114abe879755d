"""The LLM client: one logical request -> attempts (retries, failover) -> one record per attempt.

Transport. Requests go through geventhttpclient's `HTTPClient`, the engine under Locust's
`FastHttpUser`/`FastHttpSession`, with one connection pool per base URL. The session
itself is not used because it reports a streamed request when its headers arrive, and
its `iter_lines`/`iter_content` wait for 1 KB of body (on a short stream, the whole
body), and `readline()` defaults to the separator `\\r\\n`, which an SSE body never
contains. Here every socket read of the body is handed on at once: `body_blocks` reads
the socket, feeds geventhttpclient's parser and takes the complete lines from its body
buffer, the way `readline(b"\\n")` does but once per read instead of once per line, and
every event in a read gets the read's arrival time: on Linux the kernel's receive time of
its newest bytes (`loadkit.traffic.rxstamp`), so a busy event loop does not delay the
stamp; else `time.perf_counter()` right after the read returns. `Accept-Encoding:
identity` keeps proxies from buffering a compressed stream.

Timeouts. `connect_s` is the pool's connect timeout; `first_token_s` (send -> first
content chunk) and `total_s` are gevent timers raised inside the blocked read, so a hung
server costs exactly the configured time. Once the first token has arrived a stream is
`stalled` when no token arrives for `between_tokens_s` (`_StallWatch`: one timer per
stream, re-armed only when it fires). The sockets themselves have no read timeout: gevent
would arm and cancel a timer around every blocking read, a fifth of the client's work per
token.

Simulated round trip. When all regions run on one machine, a region's `rtt_ms` is
simulated without touching the measurement: the attempt starts its clock, sleeps rtt/2
(the request in flight), sends, and every arrival time read from the socket is shifted
by +rtt/2 (the response in flight); after the attempt the user sleeps the last rtt/2
before acting on the answer. So TTFT and E2E grow by exactly one RTT, inter-token gaps
are untouched (the network delays every chunk alike), the server sees the request
rtt/2 later as it would, and closed-loop pacing includes the full round trip. No timing
is taken from a sleep: the sleeps only shift when things happen.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gevent
import numpy as np
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError

from loadkit.apis.base import (
    JSON,
    SSE,
    TEXT,
    Decoder,
    Endpoint,
    Frame,
    MalformedFrame,
    PlannedCall,
    Request,
    framing_of,
    model_for,
    shown,
)
from loadkit.apis.openai import openai_body, whole_answer
from loadkit.apis.registry import API_HEADER, api_of, build_request
from loadkit.apis.sse import SSEParser
from loadkit.cost import Price
from loadkit.results.faults_schema import ATTEMPT_HEADER, attempt_key
from loadkit.results.schema import RequestRecord
from loadkit.traffic import resilience, stats
from loadkit.traffic.attempt import (
    Attempt,
    RecordContext,
    attempt_record,
    check_answer,
)
from loadkit.traffic.bodyread import body_blocks
from loadkit.traffic.rxstamp import stamped_tcp_socket
from loadkit.traffic.served import ResponseHeaders, fault_tag
from loadkit.traffic.stale import STALE_ERRORS, ReuseTracker

if TYPE_CHECKING:
    from loadkit.scenario.model import ClientPolicy

log = logging.getLogger("loadkit.client")
# APIs whose streams are OpenAI's chunks: read on the hot path with the decoder's fast text
FAST_SSE = frozenset({"openai", "azure"})

# Response headers the client keeps: retry advice, the chaos tag, the mock's ground truth.
_KEPT_HEADERS = (
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "x-loadkit-fault",
    "x-mock-ttft-ms",
    "x-mock-queue-ms",
)
_ERROR_BODY_MAX = 64 * 1024


@dataclass(frozen=True, slots=True)
class LogicalResult:
    """A logical request's end: the last attempt's record and what the user got."""

    ok: bool
    record: RequestRecord
    text: str
    latency_ms: float  # first send (or intended time, open loop) -> end of the last attempt
    attempts: int
    records: tuple[RequestRecord, ...] = ()
    headers: tuple[Mapping[str, str], ...] = ()  # kept response headers, one per attempt


class _FirstTokenTimeout(Exception):
    pass


class _TotalTimeout(Exception):
    pass


class _Stalled(Exception):
    pass


class _StallWatch:
    """Throws `_Stalled` into the reading greenlet when no token came for `limit_s`.

    Its timer is armed for the limit and, when it fires, looks at the newest arrival:
    if that is recent the timer is armed again for what remains. A stream's tokens cost
    nothing here; the timer fires about once per `limit_s` per stream.
    """

    __slots__ = ("_arrivals", "_glet", "_limit", "_loop", "_timer")

    def __init__(self, limit_s: float, arrivals: list[float]) -> None:
        self._limit = limit_s
        self._arrivals = arrivals
        self._glet = gevent.getcurrent()
        self._loop = gevent.get_hub().loop
        self._timer: Any = None
        self._arm(limit_s)

    def _arm(self, after: float) -> None:
        self._timer = self._loop.timer(after)
        self._timer.start(self._check)

    def _check(self) -> None:
        idle = time.perf_counter() - self._arrivals[-1]
        if idle >= self._limit:
            self._glet.throw(_Stalled())
        else:
            self._arm(self._limit - idle)

    def close(self) -> None:
        self._timer.close()


def request_body(call: PlannedCall) -> dict[str, Any]:
    """The OpenAI request body for a planned call (the default API's)."""
    return openai_body(call, call.model)


class LLMClient:
    """Blocking (in a greenlet) OpenAI-compatible client that records every attempt.

    One instance per Locust user (or per open-loop scheduler); `execute` may run in many
    greenlets at once, the pools allow `policy.max_concurrency` connections per base URL.
    """

    def __init__(
        self,
        environment: Any | None,
        endpoints: Mapping[str, str | Endpoint],
        policy: ClientPolicy,
        headers: Mapping[str, str] | None = None,
        sink: Callable[[RequestRecord], None] | None = None,
        run_t0: float | None = None,
        run_id: str = "",
        worker: str = "",
        price: Price | Mapping[str, Price] | Callable[[str, str], Price | None] | None = None,
        rtt_ms: Mapping[str, float] | None = None,
        *,
        seed: int | np.random.Generator = 0,
        pool_size: int | None = None,
        response_headers: ResponseHeaders | None = None,
        keys: Mapping[str, str | None] | None = None,
        endpoint_headers: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """`endpoints`: route name (a region, or a named endpoint failover may name) -> a
        base URL (OpenAI's API) or an `Endpoint` of any API. `headers` go with every
        request; `endpoint_headers` and `keys` (resolved API keys) per route."""
        if not endpoints:
            raise ValueError("LLMClient needs at least one endpoint")
        self.environment = environment
        self.routes: dict[str, Endpoint] = {
            name: ep if isinstance(ep, Endpoint) else Endpoint(name, ep, "")
            for name, ep in endpoints.items()
        }
        self.endpoints = {name: ep.base_url for name, ep in self.routes.items()}
        self.policy = policy
        self.headers = dict(headers or {})
        self.keys = dict(keys or {})
        self.endpoint_headers = {k: dict(v) for k, v in (endpoint_headers or {}).items()}
        self.sink = sink
        self.run_t0 = time.perf_counter() if run_t0 is None else run_t0
        self.run_id = run_id
        self.worker = worker
        self.price = price
        self.rtt_ms = dict(rtt_ms or {})
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.pool_size = pool_size or policy.max_concurrency or 1024
        self._clients: dict[str, HTTPClient] = {}
        self._reuse: dict[str, ReuseTracker] = {}
        self._between_s = float(policy.timeouts.between_tokens_s)
        self.response_headers = response_headers or ResponseHeaders()
        self._seq = 0
        self._warned: set[str] = set()

    # -- plumbing ---------------------------------------------------------------------------

    def _http(self, origin: str) -> HTTPClient:
        client = self._clients.get(origin)
        if client is None:
            t = self.policy.timeouts
            client = HTTPClient.from_url(
                origin,
                concurrency=self.pool_size,
                connection_timeout=float(t.connect_s),
                network_timeout=None,  # gevent timers end every wait (see the module doc)
                insecure=False,
            )
            if origin.startswith("http://"):
                client._connection_pool._create_tcp_socket = stamped_tcp_socket
            self._reuse[origin] = ReuseTracker(client)
            self._clients[origin] = client
        return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self._reuse.clear()

    def _send(self, req: Request, a: Attempt, half_rtt: float) -> Any:
        """POST and read the response head; a stale pooled connection is replaced once.

        The resend is not a new attempt: it goes at once, without backoff, on a fresh
        connection, and the attempt's clock restarts at it (the send that was answered).
        A fresh connection that fails, or one that fails after the response began, is an
        error as before (see `loadkit.traffic.stale`).
        """
        http = self._http(req.origin)
        reuse = self._reuse[req.origin]
        hdrs = dict(req.headers)
        try:
            return http.request(req.method, req.uri, body=req.body, headers=hdrs)
        except STALE_ERRORS:
            if not reuse.reused:
                raise
        a.reconnects += 1
        a.t_start = time.perf_counter() - half_rtt  # the simulated outbound half stays
        with reuse.fresh():
            return http.request(req.method, req.uri, body=req.body, headers=hdrs)

    def _price_for(self, region: str, model: str) -> Price | None:
        """`price` is one Price, a Mapping model -> Price, or a callable (route, model) -> Price."""
        p = self.price
        if p is None or isinstance(p, Price):
            return p
        if isinstance(p, Mapping):
            return p.get(model)
        return p(region, model)

    def _new_request_id(self) -> str:
        self._seq += 1
        return f"{self.worker or 'w'}-{uuid.uuid4().hex[:12]}-{self._seq}"

    # -- one logical request ----------------------------------------------------------------

    def execute(self, call: PlannedCall, t_intended_ms: float | None = None) -> LogicalResult:
        """Run a logical request to its end: attempts, retries with backoff, failover."""
        request_id = call.request_id or self._new_request_id()
        retries = self.policy.retries
        order = resilience.failover_order(call.region, self.policy.failover)
        if call.region not in self.endpoints:
            raise ValueError(
                f"region {call.region!r} has no endpoint (have {', '.join(self.endpoints)})"
            )
        order = [r for r in order if r in self.endpoints]
        t_begin = time.perf_counter()
        records: list[RequestRecord] = []
        kept: list[Mapping[str, str]] = []
        text = ""
        for i, region in enumerate(order):
            has_next = i + 1 < len(order)
            retries_left = int(retries.max_retries)
            move_on = False
            while True:
                record, text, headers = self._attempt(
                    call, region, len(records), request_id, t_intended_ms
                )
                records.append(record)
                kept.append(headers)
                if record.outcome == "ok":
                    break
                content_seen = not math.isnan(record.ttft_ms)
                if not content_seen and resilience.should_fail_over(
                    record.outcome, record.status, retries_left, has_next
                ):
                    move_on = True
                    break
                if retries_left <= 0 or not resilience.is_retryable(
                    record.outcome, record.status, headers, retries, content_seen
                ):
                    break
                retry_index = int(retries.max_retries) - retries_left
                retries_left -= 1
                gevent.sleep(
                    resilience.retry_delay_s(retry_index, headers, retries, self.rng, time.time())
                )
            if not move_on:
                break
        final = records[-1]
        t_end = time.perf_counter()
        start_ms = (t_begin - self.run_t0) * 1000.0
        if t_intended_ms is not None and not math.isnan(t_intended_ms):
            start_ms = min(start_ms, t_intended_ms)
        latency = (t_end - self.run_t0) * 1000.0 - start_ms
        return LogicalResult(
            ok=final.outcome == "ok",
            record=final,
            text=text,
            latency_ms=latency,
            attempts=len(records),
            records=tuple(records),
            headers=tuple(kept),
        )

    # -- one attempt ------------------------------------------------------------------------

    def _attempt(
        self,
        call: PlannedCall,
        region: str,
        attempt_no: int,
        request_id: str,
        t_intended_ms: float | None,
    ) -> tuple[RequestRecord, str, dict[str, str]]:
        ep = self.routes[region]
        half_rtt = float(self.rtt_ms.get(region, 0.0)) / 2000.0
        tracing = {
            "x-loadkit-request-id": request_id,
            # joins the proxy's hit journal; x-pass-*: LiteLLM's documented forward-always
            # prefix (1.108.7 did not forward it in tests/e2e/test_gateway_drill.py)
            ATTEMPT_HEADER: attempt_key(request_id, attempt_no),
            "x-pass-" + ATTEMPT_HEADER: attempt_key(request_id, attempt_no),
            "x-loadkit-region": region,
            "x-loadkit-workload": call.workload,  # the chaos proxy's workload selector
            API_HEADER: ep.api,  # how the chaos proxy counts this answer's content
            **self.headers,
            **self.endpoint_headers.get(region, {}),
        }
        req = build_request(ep, call, tracing, self.keys.get(region))
        api = api_of(ep.api)
        path = api.path(ep, call.kind).split("?", 1)[0]
        model = model_for(ep, call)
        where = RecordContext(
            self.run_t0, self.run_id, self.worker, region, path, half_rtt, ep.api, ep.name, model
        )
        price = self._price_for(region, model)
        a = Attempt()
        a.recorded = ("",) * len(self.response_headers.record)
        a.t_start = time.perf_counter()
        try:
            if half_rtt:
                gevent.sleep(half_rtt)
            self._exchange(call, ep, req, a, half_rtt)
        except BaseException as exc:  # aborted: stop/kill of the user greenlet, Ctrl-C
            a.outcome, a.error = "aborted", type(exc).__name__
            a.t_end = time.perf_counter()
            record = attempt_record(call, where, attempt_no, request_id, t_intended_ms, a, price)
            self._emit(call, record, a)
            raise
        record = attempt_record(call, where, attempt_no, request_id, t_intended_ms, a, price)
        self._emit(call, record, a)
        if half_rtt:
            gevent.sleep(half_rtt)
        return record, "".join(a.pieces), a.headers

    def _exchange(
        self, call: PlannedCall, ep: Endpoint, req: Request, a: Attempt, half_rtt: float
    ) -> None:
        t = self.policy.timeouts
        total_s = max(float(t.total_s) - 2 * half_rtt, 0.001)
        first_s = max(float(t.first_token_s) - 2 * half_rtt, 0.001)
        total = gevent.Timeout(total_s, _TotalTimeout)
        first = gevent.Timeout(first_s, _FirstTokenTimeout)
        resp = None
        total.start()
        first.start()
        try:
            try:
                resp = self._send(req, a, half_rtt)
            except (_FirstTokenTimeout, _TotalTimeout):
                a.outcome, a.error = "timeout", "no response headers before the timeout"
                return
            except (OSError, HTTPConnectionClosed, HTTPParseError) as exc:
                a.outcome, a.error = "connect_error", _describe(exc)
                return
            a.status = resp.status_code
            for name in _KEPT_HEADERS:
                value = resp.get(name)
                if value:
                    a.headers[name] = value if isinstance(value, str) else value[-1]

            def get(name: str) -> str | None:
                value = resp.get(name)
                return value if isinstance(value, str) or not value else value[-1]

            a.fault = fault_tag(get)
            a.served_by = self.response_headers.served_by_of(get)
            if self.response_headers.record:
                a.recorded = self.response_headers.recorded(get)
            api = api_of(ep.api)
            if not 200 <= a.status < 300:
                verdict = api.classify(a.status, self._error_body(resp, a), a.headers)
                a.outcome, a.error = verdict.outcome, verdict.message
                return
            content_type = get("content-type")
            framing = framing_of(content_type)
            decoder = api.decoder(ep, call)
            if framing is None or framing not in api.framings:
                raw = resp.read(200)
                a.outcome = "malformed"
                a.error = f"{a.status} {content_type or 'without Content-Type'}: {shown(raw)}"
                return
            if framing == JSON or call.kind == "embeddings":
                if call.stream and call.kind != "embeddings":
                    who = f"endpoint {ep.name}" if ep.name else "the target"
                    self._warn_once(
                        who,
                        f"{who} ({req.origin}) ignored `stream: true` and answered whole "
                        "JSON: recorded as whole answers (TTFT = time to the whole body)",
                    )
                self._read_whole(call, resp, a, decoder, ep.api)
            elif framing == SSE and ep.api in FAST_SSE:
                self._read_sse_fast(resp, a, first, decoder)
            else:
                self._read_frames(resp, a, first, decoder, framing)
            check_answer(call, a)
        except _FirstTokenTimeout:
            a.outcome, a.error = "timeout", "no first token before the timeout"
        except _TotalTimeout:
            a.outcome, a.error = "timeout", "total timeout"
        except _Stalled:
            a.outcome, a.error = "stalled", "no token within the between-tokens timeout"
        except (OSError, HTTPConnectionClosed, HTTPParseError) as exc:
            a.outcome, a.error = "stream_cut", _describe(exc)
        finally:
            total.close()
            first.close()
            if a.outcome != "ok" or math.isnan(a.t_end):
                a.t_end = time.perf_counter()  # when the client gave up
            if resp is not None:
                resp.release()

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def _take(self, fr: Frame, a: Attempt) -> bool:
        """Apply one decoded frame; False when it ends the attempt as a failure."""
        if fr.error is not None:
            # an error event inside a 200 answer: its own outcome, its message kept
            a.outcome, a.error = fr.error_outcome, f"error event: {fr.error}"[:300]
            return False
        if fr.usage is not None:
            a.usage = fr.usage
        if fr.model and not a.response_model:
            a.response_model = fr.model
        if fr.finish:
            a.finished = True
            a.finish_reason = fr.finish
        if fr.end:
            a.finished = True
        return True

    def _read_sse_fast(self, resp: Any, a: Attempt, first: Any, decoder: Decoder) -> None:
        # The hot path (OpenAI's and Azure's streams): per socket read one split into
        # events; per event a frame or pattern match for a plain content delta, the
        # decoder for the others (loadkit.apis.openai).
        parser = SSEParser()
        plain_text = decoder.fast_text
        decode = decoder.frame
        arrivals = a.arrivals
        pieces = a.pieces
        watch: _StallWatch | None = None
        try:
            for now, block in body_blocks(resp):
                a.body_bytes += len(block) + 1
                for data in parser.feed_lines(block):
                    text = plain_text(data)
                    if text is None:
                        try:
                            fr = decode(data)
                        except MalformedFrame as exc:
                            a.outcome, a.error = "malformed", str(exc)
                            return
                        if not self._take(fr, a):
                            return
                        text = fr.text.encode() if fr.content else b""
                    if text:
                        if not arrivals:
                            first.cancel()
                            a.t_first = now
                            watch = _StallWatch(self._between_s, arrivals)
                        arrivals.append(now)
                        pieces.append(text.decode("utf-8", "replace"))
                if parser.junk is not None:
                    a.outcome = "malformed"
                    a.error = f"not an event stream line: {shown(parser.junk)}"
                    return
                a.t_end = now  # the last one is the end of the body
        finally:
            if watch is not None:
                watch.close()
        if not a.finished:
            a.outcome = "stream_cut"
            a.error = "stream ended before completion"

    def _read_frames(
        self, resp: Any, a: Attempt, first: Any, decoder: Decoder, framing: str
    ) -> None:
        """Any API's stream: SSE with event names, NDJSON lines or chunked text."""
        parser = SSEParser()
        arrivals = a.arrivals
        watch: _StallWatch | None = None
        try:
            for now, block in body_blocks(resp, whole_reads=framing == TEXT):
                a.body_bytes += len(block) + (framing != TEXT)
                if framing == SSE:
                    frames = parser.feed_events(block)
                    if parser.junk is not None:
                        a.outcome = "malformed"
                        a.error = f"not an event stream line: {shown(parser.junk)}"
                        return
                elif framing == TEXT:
                    frames = [("", block)] if block else []
                else:
                    frames = [("", line) for line in block.split(b"\n") if line.strip()]
                for event, data in frames:
                    try:
                        fr = decoder.frame(data, event)
                    except MalformedFrame as exc:
                        a.outcome, a.error = "malformed", str(exc)
                        return
                    if not self._take(fr, a):
                        return
                    if fr.content:
                        if not arrivals:
                            first.cancel()
                            a.t_first = now
                            watch = _StallWatch(self._between_s, arrivals)
                        arrivals.append(now)
                        a.pieces.append(fr.text)
                a.t_end = now
        finally:
            if watch is not None:
                watch.close()
        if not (a.finished or decoder.ends_with_body):
            a.outcome = "stream_cut"
            a.error = "stream ended before completion"

    def _read_whole(
        self, call: PlannedCall, resp: Any, a: Attempt, decoder: Decoder, api: str
    ) -> None:
        raw = resp.read()
        a.t_end = time.perf_counter()
        a.body_bytes = len(raw)
        try:
            obj = json.loads(raw)
        except ValueError:
            a.outcome, a.error = "malformed", f"response is not JSON: {shown(raw)}"
            return
        try:
            fr = whole_answer(obj, True) if call.kind == "embeddings" else decoder.whole(obj)
        except MalformedFrame as exc:
            a.outcome, a.error = "malformed", str(exc)
            return
        if not self._take(fr, a):
            return
        a.finished = True
        if call.kind == "embeddings":
            return
        a.pieces.append(fr.text)
        if fr.content and api != "http":
            # a provider's non-streamed answer: the user sees the first token with the whole
            # answer; a team's own JSON service has no first token (its TTFT stays empty)
            a.t_first = a.t_end

    @staticmethod
    def _error_body(resp: Any, a: Attempt) -> bytes:
        try:
            raw = resp.read(_ERROR_BODY_MAX)
        except Exception:
            return b""
        a.body_bytes = len(raw)
        return raw

    # -- the record out: the sink and Locust's live stats ----------------------------------

    def _emit(self, call: PlannedCall, record: RequestRecord, a: Attempt) -> None:
        if self.sink is not None:
            self.sink(record)
        env = self.environment
        if env is None or record.outcome == "aborted":
            return  # a stopped user's cut-off request is in the records, not a failure row
        name = call.workload or call.kind
        error = None
        if record.outcome != "ok":
            error = f"{record.outcome} HTTP {record.status}" if record.status else record.outcome
            if a.fault:
                error += f" [fault {a.fault}]"
        stats.fire_request(env, name, record.e2e_ms, a.body_bytes, error)
        stats.log_timing(env, stats.TTFT_TYPE, name, record.ttft_ms)
        stats.log_timing(env, stats.ITL_TYPE, name, record.itl_mean_ms)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "connect timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, socket.gaierror):
        return "name resolution failed"
    if isinstance(exc, HTTPConnectionClosed):
        return "connection closed"
    text = str(exc) or type(exc).__name__
    return text[:200]
