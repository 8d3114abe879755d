"""Behaviours of the faults that act inside a streamed answer, by kind name.

Each gets the stream (`Stream`: the client's request and response, the upstream body)
and relays it, doing its fault on the way. Most act once at a trigger point (`after_tokens`
content frames, or `after_ms`): they register an `Action` with `@at_trigger`, which runs
the shared relay loop. The kinds and their parameters are in `kinds.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from loadkit.chaos import conn, responses, sse
from loadkit.chaos.faults import FaultSpec
from loadkit.chaos.relay import RelaySink


@dataclass(frozen=True)
class Stream:
    """One streamed answer a mid-stream fault selected (its headers already sent)."""

    request: web.Request
    resp: web.StreamResponse
    sink: RelaySink
    api: str = "openai"  # which API's content the frames carry (loadkit.apis)
    framing: str = "sse"  # sse | ndjson | text
    hit: Callable[[], None] = lambda: None  # counts and journals the fault: when it acts

    def splitter(self) -> sse.FrameSplitter:
        return sse.splitter(self.framing)

    def classify(self, frame: bytes) -> str:
        return sse.classify(frame, self.api, self.framing)


Behaviour = Callable[[Stream, FaultSpec], Awaitable[None]]
# At the trigger frame (not yet sent), with the frames to send before it: True ends the
# stream; False sends `out` and then the frame.
Action = Callable[[Stream, FaultSpec, bytes, list[bytes]], Awaitable[bool]]
BEHAVIOURS: dict[str, Behaviour] = {}


def whole_stream(name: str) -> Callable[[Behaviour], Behaviour]:
    """Register the decorated function as what kind `name` does to the whole stream (it
    acts on every stream it is given: the hit counts at once)."""

    def register(fn: Behaviour) -> Behaviour:
        async def acting(s: Stream, spec: FaultSpec) -> None:
            s.hit()
            await fn(s, spec)

        BEHAVIOURS[name] = acting
        return fn

    return register


def at_trigger(name: str) -> Callable[[Action], Action]:
    """Register the decorated action as what kind `name` does at its trigger point."""

    def register(action: Action) -> Action:
        BEHAVIOURS[name] = functools.partial(_triggered, action=action)
        return action

    return register


async def _triggered(s: Stream, spec: FaultSpec, action: Action) -> None:
    """Relay frame by frame; run `action` once, at the trigger point."""
    p = spec.params
    after_tokens = int(p.get("after_tokens", 0))
    after_s = float(p["after_ms"]) / 1000.0 if "after_ms" in p else None
    splitter = s.splitter()
    tokens = 0
    fired = False
    t_start = time.perf_counter()
    async for chunk in s.sink.chunks():
        out: list[bytes] = []
        for frame in splitter.feed(chunk):
            what = s.classify(frame)
            trigger = not fired and (
                (after_s is not None and time.perf_counter() - t_start >= after_s)
                or (after_s is None and what == sse.CONTENT and tokens >= after_tokens)
            )
            if trigger:
                fired = True
                s.hit()
                if out:
                    await s.resp.write(b"".join(out))
                    out = []
                if await action(s, spec, frame, out):
                    return
            out.append(frame)
            if what == sse.CONTENT:
                tokens += 1
        if out:
            await s.resp.write(b"".join(out))
    await _finish(s, splitter)  # (an answer shorter than the trigger point passes whole)


async def _finish(s: Stream, splitter: sse.FrameSplitter) -> None:
    rest = splitter.rest()
    if rest:
        await s.resp.write(rest)
    await s.resp.write_eof()


@at_trigger("stall")
async def stall(s: Stream, spec: FaultSpec, frame: bytes, out: list[bytes]) -> bool:
    await conn.hold(s.request)
    conn.reset(s.request.transport)
    return True


@at_trigger("cut")
async def cut(s: Stream, spec: FaultSpec, frame: bytes, out: list[bytes]) -> bool:
    await s.resp.write_eof()
    return True


@at_trigger("reset_mid")
async def reset_mid(s: Stream, spec: FaultSpec, frame: bytes, out: list[bytes]) -> bool:
    conn.reset(s.request.transport)
    return True


@at_trigger("error_frame")
async def error_frame(s: Stream, spec: FaultSpec, frame: bytes, out: list[bytes]) -> bool:
    """The API's own error event; a stream with no error event of its own (NDJSON, plain
    text) is reset instead, which is how such a service's failure reaches its users."""
    event = responses.error_frame(spec.id, s.api, s.framing)
    if event is None:
        conn.reset(s.request.transport)
        return True
    await s.resp.write(event)
    await s.resp.write_eof()
    return True


@at_trigger("malformed_chunk")
async def malformed_chunk(s: Stream, spec: FaultSpec, frame: bytes, out: list[bytes]) -> bool:
    out.append(responses.MALFORMED_FRAME)
    return False


@at_trigger("duplicate_chunk")
async def duplicate_chunk(s: Stream, spec: FaultSpec, frame: bytes, out: list[bytes]) -> bool:
    out.append(frame)
    return False


@whole_stream("drop_usage")
async def drop_usage(s: Stream, spec: FaultSpec) -> None:
    """Every frame but the usage-only chunk."""
    splitter = s.splitter()
    async for chunk in s.sink.chunks():
        out = [frame for frame in splitter.feed(chunk) if s.classify(frame) != sse.USAGE]
        if out:
            await s.resp.write(b"".join(out))
    await _finish(s, splitter)


@whole_stream("slow_tokens")
async def slow_tokens(s: Stream, spec: FaultSpec) -> None:
    """Stretch every gap between content frames by `factor` (the first frame is on time).

    A reader task timestamps frames as they arrive, so the schedule follows the
    upstream's real pacing, not the delays this writer adds.
    """
    factor = float(spec.params["factor"])
    queue: asyncio.Queue[tuple[float, bytes, str] | None] = asyncio.Queue()

    async def reader() -> None:
        splitter = s.splitter()
        try:
            async for chunk in s.sink.chunks():
                now = time.perf_counter()
                for frame in splitter.feed(chunk):
                    queue.put_nowait((now, frame, s.classify(frame)))
            rest = splitter.rest()
            if rest:
                queue.put_nowait((time.perf_counter(), rest, sse.OTHER))
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(reader())
    try:
        last_arrival: float | None = None
        last_emit = 0.0
        while (item := await queue.get()) is not None:
            arrival, frame, what = item
            if what == sse.CONTENT:
                if last_arrival is not None:
                    due = last_emit + factor * (arrival - last_arrival)
                    delay = due - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                last_arrival = arrival
                last_emit = time.perf_counter()
            await s.resp.write(frame)
        await s.resp.write_eof()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
