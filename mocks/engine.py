"""The simulated inference engine of one region: slots, a FIFO queue, prefill and a decode loop.

Latency comes from this model rather than from a sleep per request, so load has real effects:
requests wait for one of `max_num_seqs` slots in a bounded FIFO queue; prefill takes an
overhead plus a time per uncached prompt token; then ONE decode task per region emits every
running sequence's tokens, one per decode step, and a step lasts longer the more sequences
run (so inter-token latency rises with load and throughput saturates).

Each sequence keeps its own step phase (continuous batching: a sequence joins when its
prefill ends), on absolute deadlines of the event-loop clock (the clock asyncio's timers
use) so pacing does not drift. The loop ticks on a fine timing wheel and writes the tokens
due at each tick straight to their transports from pre-encoded chunk parts: no task
wake-up or drain per token, and the writes of a step are spread over it instead of one burst.
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
TICK_S = 0.001  # timing-wheel resolution: a token leaves within one tick of its deadline
MAX_TOKENS_PER_TICK = 64  # steps shorter than a tick send several tokens in one write


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
        "head",
        "n_out",
        "next_t",
        "on_final",
        "prefill_s",
        "prompt_tokens",
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
        self.next_t = 0.0  # loop time of this sequence's next token
        self.state = WAITING
        self.t_arrival = 0.0
        self.t_admit = 0.0
        self.t_first = 0.0  # loop time prefill ends: the first token is ready
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
        # Timing wheel: absolute tick number -> sequences due then; a heap of pending ticks.
        self._wheel: dict[int, list[Sequence]] = {}
        self._ticks: list[int] = []
        self.n_decoding = 0
        self.n_running = 0  # slots in use: prefill, ready or decoding
        self._inflight: set[Sequence] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[bool] | None = None
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
        due = (s for bucket in self._wheel.values() for s in bucket)
        remaining = min((s.n_out - s.emitted for s in due), default=1)
        return max(0.05, remaining * step)

    # ------------------------------------------------------------ prefill -> decode

    def _prefill_done(self, seq: Sequence) -> None:
        """Prefill ended: the first token is ready; headers go out, then the loop writes it."""
        seq.timer = None
        if seq.state != PREFILL:
            return
        if _closing(seq.transport):
            self._finish(seq, ABORTED)
            return
        seq.state = READY
        self.metrics.prompt_tokens += seq.prompt_tokens
        _resolve(seq.first, True)

    def begin_decode(self, seq: Sequence) -> None:
        """The first token is out (the API wrote it with the headers); the loop does the rest."""
        if seq.state != READY:
            return
        loop = self._loop
        now = loop.time() if loop is not None else 0.0
        self.metrics.ttft.observe(now - seq.t_arrival)
        seq.emitted = 1
        if seq.n_out <= 1:
            self._finish(seq, FINISHED)
            return
        seq.state = DECODING
        seq.next_t = now + self.step_seconds(self.n_decoding + 1)
        self.n_decoding += 1
        self._schedule(seq, int(seq.next_t / TICK_S))

    def _schedule(self, seq: Sequence, tick: int) -> None:
        bucket = self._wheel.get(tick)
        if bucket is None:
            self._wheel[tick] = [seq]
            heapq.heappush(self._ticks, tick)
            if self._ticks[0] == tick:
                _resolve(self._waiter, True)  # sooner than what the loop sleeps for
        else:
            bucket.append(seq)

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

    def abort_all(self, cut: bool = True) -> None:
        """Outage: every queued and running request ends now, its connection closed
        (`cut`), or left to its handler to end in its API's words (an overload)."""
        for seq in list(self.waiting):
            if cut and seq.transport is not None:
                seq.transport.abort()
            self.release(seq)
        for seq in list(self._inflight):
            if cut and seq.transport is not None:
                seq.transport.abort()
            self._finish(seq, ABORTED)
        self._wheel.clear()
        self._ticks.clear()
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
        ticks = self._ticks
        while True:
            if not ticks or ticks[0] * TICK_S > loop.time():
                # sleep to the next due tick; `_schedule` wakes us for a sooner one
                self._waiter = waiter = loop.create_future()
                timer = loop.call_at(ticks[0] * TICK_S, _resolve, waiter, True) if ticks else None
                await waiter
                self._waiter = None
                if timer is not None:
                    timer.cancel()
                continue
            now = loop.time()
            self.metrics.step_lateness.observe(now - ticks[0] * TICK_S)
            current = int(now / TICK_S)
            while ticks and ticks[0] <= current:
                self._tick(self._wheel.pop(heapq.heappop(ticks)), now, current)

    def _tick(self, due: list[Sequence], now: float, current: int) -> None:
        """Emit the tokens due at this tick and reschedule each sequence one step later."""
        tokens = TOKEN_BYTES
        mask = TOKEN_MASK
        step = self.step_seconds(max(1, self.n_decoding))
        sigma = self.profile.jitter.step_sigma
        if sigma > 0.0:
            step *= math.exp(sigma * float(self._rng.standard_normal()))
        finished: list[Sequence] = []
        wheel = self._wheel
        n_tokens = 0
        for seq in due:
            tr = seq.transport
            if seq.state != DECODING or tr is None or tr.is_closing():
                seq.n_out = -1  # marks "client gone" (or released)
                finished.append(seq)
                continue
            head = seq.head
            i = seq.emitted
            last = seq.n_out - 1
            next_t = seq.next_t
            data = b""
            n = 0
            while True:  # once, unless the next token is already due (step < tick)
                if i >= last:  # the last token, with finish/usage/[DONE] if the API wants
                    if head is not None and seq.on_final is not None:
                        seq.emitted = i
                        data += seq.on_final(seq)
                    i += 1
                    n += 1
                    break
                if head is not None:
                    data += head + tokens[(seq.word0 + i) & mask] + seq.tail
                i += 1
                n += 1
                next_t += step
                if next_t > now or n >= MAX_TOKENS_PER_TICK:
                    break
            seq.emitted = i
            seq.next_t = next_t
            n_tokens += n
            if data:
                tr.write(data)
            if i > last:
                finished.append(seq)
                continue
            # the unsent-buffer check once per 8 tokens, not per token: a stalled reader is
            # caught at most 8 frames past the bound
            if head is not None and i & 7 < n and tr.get_write_buffer_size() > SLOW_CLIENT_BYTES:
                tr.abort()
                seq.n_out = -1
                finished.append(seq)
                continue
            if seq.next_t < now - step:  # far behind (overload): no catch-up burst
                seq.next_t = now + step
            tick = int(seq.next_t / TICK_S)
            if tick <= current:
                tick = current + 1
            bucket = wheel.get(tick)
            if bucket is None:
                wheel[tick] = [seq]
                heapq.heappush(self._ticks, tick)
            else:
                bucket.append(seq)
        if n_tokens:
            self.metrics.itl.observe(step, n_tokens)
        for seq in finished:
            self.n_decoding -= 1
            self._finish(seq, ABORTED if seq.n_out < 0 else FINISHED)


def _resolve(fut: asyncio.Future[bool] | None, value: bool) -> None:
    if fut is not None and not fut.done():
        fut.set_result(value)
