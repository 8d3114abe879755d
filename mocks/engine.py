"""The simulated inference engine of one region: slots, a FIFO queue, prefill and a decode loop.

Latency comes from this model rather than from a sleep per request, so load has real effects:
requests wait for one of `max_num_seqs` slots in a bounded FIFO queue; prefill takes an
overhead plus a time per uncached prompt token; then ONE decode task per region advances
every running sequence by one token per step, and a step lasts longer the more sequences
run. Steps are scheduled on absolute deadlines of the event-loop clock (the clock asyncio's
timers use) so pacing does not drift, and tokens of streaming requests are written straight
to their transports from pre-encoded chunk parts: no task wake-up or drain per token.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from mocks.metrics import EngineMetrics
from mocks.profile import Profile
from mocks.words import TOKEN_BYTES, TOKEN_MASK

WAITING, PREFILL, READY, DECODING, FINISHED, ABORTED = range(6)
SLOW_CLIENT_BYTES = 1 << 20  # a stream whose unsent buffer passes this is closed


class QueueFull(Exception):
    """The waiting queue is at `max_waiting`; the caller answers 429."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("waiting queue is full")
        self.retry_after_s = retry_after_s


class Sequence:
    """One request inside the engine; plain slots because the decode loop touches it per token."""

    __slots__ = (
        "cached_tokens",
        "done",
        "emitted",
        "first",
        "first_bytes",
        "head",
        "n_out",
        "on_final",
        "prefill_s",
        "prompt_tokens",
        "slot",
        "state",
        "t_admit",
        "t_arrival",
        "t_first",
        "tail",
        "timer",
        "transport",
        "word0",
    )

    def __init__(
        self,
        prompt_tokens: int,
        cached_tokens: int,
        n_out: int,
        prefill_s: float,
        word0: int,
        transport: Any,
    ) -> None:
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = cached_tokens
        self.n_out = n_out  # tokens to generate (0 = prefill only, e.g. embeddings)
        self.prefill_s = prefill_s  # at latency_scale 1, jitter included
        self.word0 = word0
        self.transport = transport
        self.emitted = 0
        self.slot = -1  # index in the engine's decode slots while decoding
        self.state = WAITING
        self.t_arrival = 0.0
        self.t_admit = 0.0
        self.t_first = 0.0  # loop time the first token is scheduled for (a decode step)
        self.first_bytes: bytes | None = None  # streaming: role + first token, HTTP-framed
        self.head: bytes | None = None  # streaming: bytes before each token, set by the API
        self.tail = b""
        self.on_final: Callable[[Sequence], bytes] | None = None
        self.first: asyncio.Future[bool] | None = None
        self.done: asyncio.Future[bool] | None = None
        self.timer: asyncio.TimerHandle | None = None

    @property
    def queue_s(self) -> float:
        return self.t_admit - self.t_arrival

    @property
    def ttft_s(self) -> float:
        return self.t_first - self.t_arrival


def _closing(transport: Any) -> bool:
    return transport is None or transport.is_closing()


class Engine:
    """Slots, FIFO queue and decode loop for one region; all methods run on the event loop."""

    def __init__(self, profile: Profile, seed_seq: np.random.SeedSequence, metrics: EngineMetrics):
        self.profile = profile
        self.metrics = metrics
        self._rng = np.random.default_rng(seed_seq)
        self.waiting: deque[Sequence] = deque()
        # Decode slots in a fixed order: a sequence keeps its index for life and a new one
        # takes the lowest free index, so each stream's place in a step's burst of writes
        # (and so its pacing) stays steady while others come and go.
        self.decoding: list[Sequence | None] = []
        self._free: list[int] = []  # heap of free indices in `decoding`
        self.n_decoding = 0
        self._active = False  # the decode loop is on its step grid
        self._next_t = 0.0  # deadline of the next decode step
        self.n_running = 0  # slots in use: prefill, ready or decoding
        self._inflight: set[Sequence] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._sweeper: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="mock-decode-loop")

    async def stop(self) -> None:
        self.abort_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def set_profile(self, profile: Profile) -> None:
        """Apply a run-time change (capacity, latency scale...); more slots admit at once."""
        self.profile = profile
        self._admit_waiting()

    # ------------------------------------------------------------ admission

    def submit(self, seq: Sequence) -> None:
        """Admit `seq` now or queue it; raises QueueFull when the queue is at its bound."""
        loop = self._loop
        assert loop is not None, "engine not started"
        seq.first = loop.create_future()
        seq.done = loop.create_future()
        seq.t_arrival = loop.time()
        if self.n_running < self.profile.max_num_seqs and not self.waiting:
            self._admit(seq)
            return
        if len(self.waiting) >= self.profile.max_waiting:
            raise QueueFull(self.retry_estimate_s())
        self.waiting.append(seq)
        self.metrics.waiting = len(self.waiting)
        if self._sweeper is None:
            self._sweeper = loop.call_later(0.25, self._sweep_waiting)

    def _admit(self, seq: Sequence) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        seq.state = PREFILL
        seq.t_admit = now
        self._inflight.add(seq)
        self.n_running += 1
        self.metrics.running = self.n_running
        seq.t_first = now + seq.prefill_s * self.profile.latency_scale
        seq.timer = loop.call_at(seq.t_first, self._prefill_done, seq)  # t_first: prefill end

    def _admit_waiting(self) -> None:
        waiting = self.waiting
        while waiting and self.n_running < self.profile.max_num_seqs:
            seq = waiting.popleft()
            if _closing(seq.transport):
                seq.state = ABORTED
                _resolve(seq.first, False)
                _resolve(seq.done, False)
                continue
            self._admit(seq)
        self.metrics.waiting = len(waiting)

    def _sweep_waiting(self) -> None:
        """Drop queued requests whose client went away, so the queue holds live ones only."""
        self._sweeper = None
        if not self.waiting:
            return
        live: deque[Sequence] = deque()
        for seq in self.waiting:
            if _closing(seq.transport):
                seq.state = ABORTED
                _resolve(seq.first, False)
                _resolve(seq.done, False)
            else:
                live.append(seq)
        self.waiting = live
        self.metrics.waiting = len(live)
        if live and self._loop is not None:
            self._sweeper = self._loop.call_later(0.25, self._sweep_waiting)

    def retry_estimate_s(self) -> float:
        """When a slot is likely to free up: the shortest remaining generation, at least 50 ms."""
        step = self.step_seconds(max(1, self.n_decoding))
        remaining = min((s.n_out - s.emitted for s in self.decoding if s is not None), default=1)
        return max(0.05, remaining * step)

    # ------------------------------------------------------------ prefill -> decode

    def _prefill_done(self, seq: Sequence) -> None:
        """Prefill ended; as in a batching engine the first token leaves with the next step."""
        seq.timer = None
        if seq.state != PREFILL:
            return
        if _closing(seq.transport):
            self._finish(seq, ABORTED)
            return
        seq.state = READY
        now = seq.t_first
        if self._active and self._next_t > now:
            seq.t_first = self._next_t
        self.metrics.prompt_tokens += seq.prompt_tokens
        _resolve(seq.first, True)

    def begin_decode(self, seq: Sequence) -> None:
        """The API is ready (headers sent); the loop writes `first_bytes` at the next step."""
        if seq.state != READY:
            return
        seq.state = DECODING
        seq.emitted = 0
        if self._free:
            seq.slot = heapq.heappop(self._free)
            self.decoding[seq.slot] = seq
        else:
            seq.slot = len(self.decoding)
            self.decoding.append(seq)
        self.n_decoding += 1
        if not self._active:
            self._wake.set()

    def finish_prefill_only(self, seq: Sequence) -> None:
        """Embeddings and other prefill-only work end at the first 'token'."""
        if seq.state == READY:
            self._finish(seq, FINISHED)

    def release(self, seq: Sequence) -> None:
        """Free whatever `seq` holds; safe to call more than once (handlers call it in finally)."""
        if seq.state in (FINISHED, ABORTED):
            return
        if seq.state == WAITING:
            with contextlib.suppress(ValueError):
                self.waiting.remove(seq)
            seq.state = ABORTED
            self.metrics.waiting = len(self.waiting)
            _resolve(seq.first, False)
            _resolve(seq.done, False)
            return
        self._finish(seq, ABORTED)

    def abort_all(self) -> None:
        """Outage: every queued and running request ends now, connections closed."""
        for seq in list(self.waiting):
            if seq.transport is not None:
                seq.transport.abort()
            self.release(seq)
        for seq in list(self._inflight):
            if seq.transport is not None:
                seq.transport.abort()
            self._finish(seq, ABORTED)
        self.decoding = []
        self._free = []
        self.n_decoding = 0

    def _finish(self, seq: Sequence, state: int) -> None:
        prev = seq.state
        if prev in (FINISHED, ABORTED):
            return
        seq.state = state
        if seq.timer is not None:
            seq.timer.cancel()
            seq.timer = None
        if prev in (PREFILL, READY, DECODING):
            self._inflight.discard(seq)
            self.n_running -= 1
            self.metrics.running = self.n_running
        if state == FINISHED:
            m = self.metrics
            m.generation_tokens += seq.emitted if seq.n_out else 0
            loop_time = self._loop.time() if self._loop else seq.t_first
            m.e2e.observe(loop_time - seq.t_arrival)
            m.success += 1
        _resolve(seq.first, state == FINISHED)
        _resolve(seq.done, state == FINISHED)
        self._admit_waiting()

    # ------------------------------------------------------------ decode loop

    def step_seconds(self, n: int) -> float:
        p = self.profile
        return (p.decode_step_ms + p.decode_step_ms_per_seq * (n - 1)) * p.latency_scale / 1000.0

    async def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        next_t = loop.time()
        while True:
            if not self.n_decoding:
                self._active = False
                self._wake.clear()
                await self._wake.wait()
                # a new grid starts now: the joiners' first tokens go out at once
                next_t = self._next_t = loop.time()
                self._active = True
                self._step(0.0)
                continue
            step = self.step_seconds(self.n_decoding)
            sigma = self.profile.jitter.step_sigma
            if sigma > 0.0:
                step *= math.exp(sigma * float(self._rng.standard_normal()))
            next_t += step
            self._next_t = next_t
            delay = next_t - loop.time()
            if delay > 0.0:
                await asyncio.sleep(delay)
            else:
                if delay < -0.2:  # fell far behind (overload): restart the grid, no burst
                    next_t = loop.time()
                await asyncio.sleep(0)
            self.metrics.step_lateness.observe(loop.time() - next_t)
            self._step(step)

    def _step(self, step: float) -> None:
        """One decode step: a token for every running sequence, in slot order."""
        finished: list[Sequence] = []
        tokens = TOKEN_BYTES
        mask = TOKEN_MASK
        joined = 0
        for seq in self.decoding:
            if seq is None:
                continue
            tr = seq.transport
            if seq.state != DECODING or tr is None or tr.is_closing():
                finished.append(seq)
                seq.n_out = -1  # marks "client gone"
                continue
            i = seq.emitted
            if i == 0:  # joined since the last step: its first token (role chunk included)
                if seq.first_bytes is not None:
                    tr.write(seq.first_bytes)
                    seq.first_bytes = None
                seq.emitted = 1
                joined += 1
                self._first_token(seq)
                if seq.n_out <= 1:
                    finished.append(seq)
                continue
            head = seq.head
            if i + 1 >= seq.n_out:
                if head is not None and seq.on_final is not None:
                    tr.write(seq.on_final(seq))
                seq.emitted = i + 1
                finished.append(seq)
                continue
            if head is not None:
                tr.write(head + tokens[(seq.word0 + i) & mask] + seq.tail)
                if not i & 15 and tr.get_write_buffer_size() > SLOW_CLIENT_BYTES:
                    tr.abort()
                    finished.append(seq)
                    seq.n_out = -1
                    continue
            seq.emitted = i + 1
        if step > 0.0:
            self.metrics.itl.observe(step, self.n_decoding - joined)
        if finished:
            slots = self.decoding
            for seq in finished:  # the list keeps its high-water length; holes are reused
                slots[seq.slot] = None
                heapq.heappush(self._free, seq.slot)
                seq.slot = -1
                self.n_decoding -= 1
            for seq in finished:
                self._finish(seq, ABORTED if seq.n_out < 0 else FINISHED)

    def _first_token(self, seq: Sequence) -> None:
        loop = self._loop
        if loop is not None:
            self.metrics.ttft.observe(loop.time() - seq.t_arrival)


def _resolve(fut: asyncio.Future[bool] | None, value: bool) -> None:
    if fut is not None and not fut.done():
        fut.set_result(value)
