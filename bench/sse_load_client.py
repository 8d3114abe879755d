"""A lean closed-loop SSE load client: one epoll loop, raw non-blocking sockets, HTTP/1.1.

It must not be the bottleneck, so it does the minimum per received segment: one `recvmsg`,
a count of `\\n\\n` event boundaries and an append of the arrival time. Each of `streams`
slots keeps one request in flight; when a response ends the slot sends the next request on
the same keep-alive connection (or reconnects if the server closed it). Initial starts are
spread over `ramp_s` so streams do not start in phase.

Arrival times are the kernel's receive timestamps (SO_TIMESTAMPNS), taken when the bytes
reach the socket, so the client's own scheduling delay is not counted as server lateness;
that also lets the loop poll at most every `batch_s` and serve many sockets per wake-up.
(A read that holds events sent at two different steps gets the later one's stamp; the
client keeps up far within a step, so this does not happen unless the machine stalls it.)

Pacing error of an event is its lateness against its stream's own schedule: with `t_i` the
arrival of event `i` and `s_i` its decode step (from the template), the stream's schedule is
`a + s_i x step` with `a = min_i(t_i - s_i x step)` over the paced events (step >= 1);
lateness `t_i - a - s_i x step` is zero for an on-time event and grows with any delay or
drift. The gap error `|(t_i - t_{i-1}) - (s_i - s_{i-1}) x step|` is reported beside it.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import select
import socket
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from loadkit.traffic.rxstamp import SO_TIMESTAMPNS, TIMESPEC

_TERMINATOR = b"\r\n0\r\n\r\n"
_HDR_END = b"\r\n\r\n"

_CONNECTING, _HEADERS, _BODY = 0, 1, 2


def _clock_offset() -> float:
    """CLOCK_REALTIME (kernel receive stamps) minus perf_counter, from the tightest of 5 reads."""
    best = (float("inf"), 0.0)
    for _ in range(5):
        a = time.perf_counter()
        w = time.time_ns() * 1e-9
        b = time.perf_counter()
        best = min(best, (b - a, w - (a + b) / 2))
    return best[1]


@dataclass(frozen=True)
class PointSpec:
    """One measurement: `streams` concurrent streams against one server."""

    host: str
    port: int
    path: str
    body: bytes
    streams: int
    step_ms: float
    steps: tuple[int, ...]
    ramp_s: float
    warmup_s: float
    window_s: float
    stall_s: float = 10.0
    kernel_timestamps: bool = True
    batch_s: float = 0.002  # minimum time between polls, only with kernel timestamps


@dataclass
class PointResult:
    """What the client saw inside the measurement window (and a few run-wide counters)."""

    events: int = 0
    window_s: float = 0.0
    lateness_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    gap_error_ms: np.ndarray = field(default_factory=lambda: np.empty(0))
    open_streams: np.ndarray = field(default_factory=lambda: np.empty(0))
    completed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    connects: int = 0
    reconnects: int = 0
    coalesced_reads: int = 0
    client_cpu_s: float = 0.0
    max_open: int = 0

    @property
    def events_per_s(self) -> float:
        return self.events / self.window_s if self.window_s > 0 else 0.0


class _Slot:
    __slots__ = ("expect", "fd", "hbuf", "n", "sock", "state", "t_last", "t_send", "tail", "times")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.fd = -1
        self.state = _CONNECTING
        self.hbuf = b""
        self.tail = b""
        self.times: array[float] = array("d")
        self.n = 0
        self.t_send = 0.0
        self.t_last = 0.0
        self.expect = True


class _Collector:
    """Turns finished (or cut) streams into per-event lateness and gap errors in the window.

    Events of step 0 (written when the first token is ready) measure TTFT, not pacing; the
    schedule is fitted to the paced events (step >= 1) only.
    """

    def __init__(self, steps: tuple[int, ...], step_ms: float) -> None:
        self.steps_ms = np.asarray(steps, dtype=np.float64) * step_ms
        self.n0 = sum(1 for s in steps if s == 0)
        self.lo = float("inf")
        self.hi = float("inf")
        self.late: list[np.ndarray] = []
        self.gaps: list[np.ndarray] = []
        self.events = 0

    def add(self, times: array[float]) -> None:
        n = len(times)
        if n == 0:
            return
        t = np.frombuffer(times, dtype=np.float64) * 1000.0
        self.events += int(((t >= self.lo) & (t < self.hi)).sum())
        if n <= self.n0:
            return
        t = t[self.n0 :]
        rel = t - self.steps_ms[self.n0 : n]
        inside = (t >= self.lo) & (t < self.hi)
        self.late.append((rel - rel.min())[inside])
        if len(t) > 1:
            self.gaps.append(np.abs(np.diff(rel))[inside[1:]])


def _new_socket(spec: PointSpec, ep: select.epoll, slot: _Slot) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if spec.kernel_timestamps:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    rc = sock.connect_ex((spec.host, spec.port))
    if rc not in (0, errno.EINPROGRESS):
        sock.close()
        raise OSError(rc, f"connect to {spec.host}:{spec.port} failed")
    slot.sock = sock
    slot.fd = sock.fileno()
    slot.state = _CONNECTING
    ep.register(slot.fd, select.EPOLLOUT)


def run_point(spec: PointSpec, on_window: Callable[[bool], None] | None = None) -> PointResult:
    """Drive `spec.streams` concurrent streams; measure events in [ramp+warmup, +window).

    `on_window(True)` is called when the window opens and `on_window(False)` when it closes,
    so the caller can read the server's CPU time over exactly the same interval.
    """
    n_expected = len(spec.steps)
    steps = spec.steps
    request = (
        f"POST {spec.path} HTTP/1.1\r\nHost: {spec.host}:{spec.port}\r\n"
        "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
        f"Content-Length: {len(spec.body)}\r\n\r\n"
    ).encode() + spec.body
    ep = select.epoll()
    slots: dict[int, _Slot] = {}
    pending: list[_Slot] = [_Slot() for _ in range(spec.streams)]
    result = PointResult()
    errors = result.errors
    col = _Collector(spec.steps, spec.step_ms)
    perf = time.perf_counter
    clock_offset = _clock_offset()

    def fail(slot: _Slot, kind: str) -> None:
        errors[kind] = errors.get(kind, 0) + 1
        col.add(slot.times)
        close(slot)
        if running:
            start(slot)

    def close(slot: _Slot) -> None:
        if slot.sock is not None:
            slots.pop(slot.fd, None)
            with contextlib.suppress(OSError, ValueError):
                ep.unregister(slot.fd)
            slot.sock.close()
            slot.sock = None
            slot.fd = -1

    def start(slot: _Slot) -> None:
        slot.times = array("d")
        slot.n = 0
        slot.hbuf = b""
        slot.tail = b""
        if slot.sock is None:
            _new_socket(spec, ep, slot)
            slots[slot.fd] = slot
            result.connects += 1
            slot.t_send = perf()
            slot.t_last = slot.t_send
            return
        slot.state = _HEADERS
        slot.t_send = perf()
        slot.t_last = slot.t_send
        try:
            slot.sock.send(request)
        except OSError:
            close(slot)
            start(slot)

    def finish(slot: _Slot) -> None:
        if slot.n != n_expected:
            errors["event_count"] = errors.get("event_count", 0) + 1
        result.completed += 1
        col.add(slot.times)
        if not slot.expect:
            close(slot)
        if running:
            start(slot)

    gc_was_enabled = gc.isenabled()
    gc.disable()
    cpu0 = time.process_time()
    t_begin = perf()
    col.lo = (t_begin + spec.ramp_s + spec.warmup_s) * 1000.0
    col.hi = col.lo + spec.window_s * 1000.0
    t_end = col.hi / 1000.0
    spacing = spec.ramp_s / max(spec.streams, 1)
    next_start = t_begin
    started = 0
    running = True
    stamped = False  # kernel receive timestamps seen (then polling may be batched)
    last_poll = 0.0
    samples: list[int] = []
    next_sample = col.lo / 1000.0
    next_stall_check = t_begin + 1.0
    cpu_in = 0.0
    try:
        while True:
            now = perf()
            while started < spec.streams and next_start <= now:
                start(pending[started])
                started += 1
                next_start = t_begin + started * spacing
            if now >= next_sample and now < t_end:
                if not samples:
                    cpu_in = time.process_time()
                    if on_window is not None:
                        on_window(True)
                samples.append(sum(1 for s in slots.values() if s.state != _CONNECTING))
                next_sample += 0.1
            if now >= t_end:
                break
            if now >= next_stall_check:
                next_stall_check = now + 1.0
                for slot in [s for s in slots.values() if now - s.t_last > spec.stall_s]:
                    fail(slot, "stalled")
            timeout = 0.05
            if started < spec.streams:
                timeout = max(0.0, min(timeout, next_start - now))
            if stamped and now - last_poll < spec.batch_s:
                # Arrival times come from the kernel, so reading a little later costs no
                # accuracy and lets one wake-up serve many sockets.
                time.sleep(spec.batch_s - (now - last_poll))
            last_poll = perf()
            for fd, _ev in ep.poll(timeout):
                slot = slots.get(fd)
                if slot is None:
                    continue
                if slot.state == _CONNECTING:
                    err = slot.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        fail(slot, "connect")
                        continue
                    ep.modify(fd, select.EPOLLIN)
                    slot.state = _HEADERS
                    slot.sock.send(request)
                    continue
                try:
                    data, anc, _, _ = slot.sock.recvmsg(262144, 64)
                except (ConnectionError, OSError):
                    fail(slot, "reset")
                    continue
                if anc:
                    sec, nsec = TIMESPEC.unpack_from(anc[0][2])
                    t = sec + nsec * 1e-9 - clock_offset
                    stamped = True
                else:
                    t = perf()
                    stamped = False
                slot.t_last = t
                if not data:
                    if slot.state == _BODY and not slot.expect:
                        finish(slot)
                    elif slot.state == _HEADERS and not slot.hbuf:
                        result.reconnects += 1  # keep-alive connection closed between requests
                        close(slot)
                        start(slot)
                    else:
                        fail(slot, "closed")
                    continue
                if slot.state == _HEADERS:
                    data = slot.hbuf + data
                    cut = data.find(_HDR_END)
                    if cut < 0:
                        slot.hbuf = data
                        continue
                    head = data[:cut].lower()
                    if head[9:12] != b"200":
                        errors["http_" + head[9:12].decode("latin-1")] = (
                            errors.get("http_" + head[9:12].decode("latin-1"), 0) + 1
                        )
                        col.add(slot.times)
                        close(slot)
                        if running:
                            start(slot)
                        continue
                    slot.expect = b"chunked" in head and b"connection: close" not in head
                    slot.hbuf = b""
                    slot.state = _BODY
                    data = data[cut + 4 :]
                    if not data:
                        continue
                k = data.count(b"\n\n")
                if data[0] == 10 and slot.tail[-1:] == b"\n":
                    k += 1
                if k:
                    if (
                        k > 1
                        and slot.n + k <= n_expected
                        and steps[slot.n] != steps[slot.n + k - 1]
                    ):
                        result.coalesced_reads += 1  # events of two steps in one read
                    slot.n += k
                    times = slot.times
                    for _ in range(k):
                        times.append(t)
                slot.tail = data[-7:] if len(data) >= 7 else (slot.tail + data)[-7:]
                if slot.expect and slot.tail == _TERMINATOR:
                    finish(slot)
        result.max_open = max(samples) if samples else 0
    finally:
        running = False
        cpu1 = time.process_time()
        if on_window is not None and samples:
            on_window(False)
        for slot in list(slots.values()):
            col.add(slot.times)
            close(slot)
        ep.close()
        if gc_was_enabled:
            gc.enable()
    result.client_cpu_s = cpu1 - (cpu_in or cpu0)
    result.window_s = spec.window_s
    result.events = col.events
    result.lateness_ms = np.concatenate(col.late) if col.late else np.empty(0)
    result.gap_error_ms = np.concatenate(col.gaps) if col.gaps else np.empty(0)
    result.open_streams = np.asarray(samples, dtype=np.int64)
    return result
