"""The simulated engine: slots and FIFO queue, decode steps that slow with load, clean release.

In-process tests drive `mocks.engine.Engine` with recording transports; the end-to-end tests
check the same effects through a real mock subprocess and real streaming clients.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import time

import aiohttp
import numpy as np
import pytest

from mocks.engine import Engine, QueueFull, Sequence
from mocks.metrics import EngineMetrics
from mocks.profile import Jitter, ModelSpec, Profile
from tests.conftest import StartMock


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[tuple[float, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append((time.perf_counter(), data))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        self.closing = True


def profile(**kw: object) -> Profile:
    base = Profile(
        models=(ModelSpec("m"),),
        max_num_seqs=2,
        max_waiting=3,
        prefill_overhead_ms=10.0,
        prefill_ms_per_token=0.0,
        decode_step_ms=5.0,
        decode_step_ms_per_seq=1.0,
        jitter=Jitter(),
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def make_seq(n_out: int, transport: RecordingTransport | None = None) -> Sequence:
    seq = Sequence(10, 0, n_out, 0.010, 0, transport or RecordingTransport())
    seq.head, seq.tail = b"<", b">"
    seq.on_final = lambda s: b"END"
    return seq


async def serve(engine: Engine, seq: Sequence) -> bool:
    """What an API handler does around the engine."""
    try:
        assert seq.first is not None and seq.done is not None
        if not await seq.first:
            return False
        engine.begin_decode(seq)
        return await seq.done
    finally:
        engine.release(seq)


def test_queue_wait_is_real_and_fifo() -> None:
    async def main() -> tuple[list[Sequence], Engine]:
        engine = Engine(profile(), np.random.SeedSequence(0), EngineMetrics())
        engine.start()
        seqs = [make_seq(20) for _ in range(5)]
        for s in seqs:
            engine.submit(s)
        with pytest.raises(QueueFull) as info:
            engine.submit(make_seq(20))
        assert info.value.retry_after_s >= 0.05
        assert engine.metrics.running == 2 and engine.metrics.waiting == 3
        results = await asyncio.gather(*(serve(engine, s) for s in seqs))
        assert results == [True] * 5
        await engine.stop()
        return seqs, engine

    seqs, engine = asyncio.run(main())
    assert engine.n_running == 0 and not engine.waiting and engine.n_decoding == 0
    assert not engine._wheel and not engine._ticks
    q = [s.queue_s for s in seqs]
    # two slots: 0,1 start at once; 2,3 wait one generation (10 ms + 19 steps of 6 ms); 4 two
    assert q[0] < 0.005 and q[1] < 0.005
    assert 0.10 < q[2] < 0.5 and 0.10 < q[3] < 0.5
    assert q[4] > q[2] + 0.08
    for s in seqs:  # TTFT = queue wait + prefill
        assert s.ttft_s == pytest.approx(s.queue_s + 0.010, abs=1e-6)
    assert engine.metrics.generation_tokens == 100
    assert engine.metrics.success == 5
    for s in seqs:  # the first token comes from the API; the loop writes 18 tokens + the end
        data = b"".join(w for _, w in s.transport.writes)
        assert data.count(b"<") == 18 and data.endswith(b"END")


def test_steps_are_paced_by_running_count() -> None:
    async def main(n: int) -> float:
        p = profile(max_num_seqs=64, decode_step_ms=4.0, decode_step_ms_per_seq=0.5)
        engine = Engine(p, np.random.SeedSequence(0), EngineMetrics())
        engine.start()
        seqs = [make_seq(40) for _ in range(n)]
        for s in seqs:
            engine.submit(s)
        await asyncio.gather(*(serve(engine, s) for s in seqs))
        await engine.stop()
        # one time per token (a late loop may send two due tokens in one write)
        times = [t for t, w in seqs[0].transport.writes for _ in range(w.count(b"<"))]
        return (times[-1] - times[0]) / (len(times) - 1)

    alone = asyncio.run(main(1))
    loaded = asyncio.run(main(30))
    # absolute deadlines: the mean gap matches the model, 4 ms alone, 4 + 29 x 0.5 = 18.5 loaded
    assert alone == pytest.approx(0.004, rel=0.25)
    assert loaded == pytest.approx(0.0185, rel=0.15)


def test_disconnect_frees_slot_and_admits_next() -> None:
    async def main() -> tuple[list[bool], Engine]:
        engine = Engine(profile(max_num_seqs=1), np.random.SeedSequence(0), EngineMetrics())
        engine.start()
        gone = make_seq(10_000)
        queued_gone = make_seq(5)
        nxt = make_seq(5)
        for s in (gone, queued_gone, nxt):
            engine.submit(s)
        queued_gone.transport.closing = True  # leaves while still queued
        task = asyncio.ensure_future(serve(engine, gone))
        await asyncio.sleep(0.05)
        gone.transport.closing = True  # leaves mid-stream
        results = await asyncio.gather(task, serve(engine, queued_gone), serve(engine, nxt))
        await engine.stop()
        return list(results), engine

    results, engine = asyncio.run(main())
    assert results == [False, False, True]
    assert engine.n_running == 0 and engine.metrics.running == 0
    assert engine.metrics.waiting == 0


def test_release_is_idempotent_and_abort_all_empties() -> None:
    async def main() -> Engine:
        engine = Engine(profile(max_num_seqs=1), np.random.SeedSequence(0), EngineMetrics())
        engine.start()
        a, b = make_seq(1000), make_seq(1000)
        engine.submit(a)
        engine.submit(b)
        task = asyncio.ensure_future(serve(engine, a))
        await asyncio.sleep(0.03)
        engine.abort_all()
        assert await task is False
        engine.release(a)
        engine.release(b)
        engine.release(b)
        await engine.stop()
        return engine

    engine = asyncio.run(main())
    assert engine.n_running == 0 and not engine.waiting


# ------------------------------------------------------------------ end to end


def engine_config(**kw: object) -> dict[str, object]:
    cfg: dict[str, object] = {
        "latency_scale": 1.0,
        "jitter": {"sigma": 0.0, "step_sigma": 0.0, "tail_prob": 0.0},
        "rate_limits": None,
        "prefix_cache": {"enabled": False},
        "prefill_ms_per_token": 0.0,
    }
    cfg.update(kw)
    return cfg


async def _stream(
    session: aiohttp.ClientSession, url: str, max_tokens: int
) -> tuple[float, float, list[float], dict[str, str]]:
    """(client TTFT s, header TTFT s, content-chunk arrival times, headers)."""
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "max_tokens": max_tokens,
    }
    t0 = time.perf_counter()
    arrivals: list[float] = []
    async with session.post(url + "/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        async for line in resp.content:
            if line.startswith(b"data: {"):
                chunk = json.loads(line[6:])
                if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                    arrivals.append(time.perf_counter())
        headers = dict(resp.headers)
    return arrivals[0] - t0, float(headers["x-mock-ttft-ms"]) / 1000, arrivals, headers


def _run_streams(url: str, n: int, max_tokens: int) -> list[tuple[float, float, list[float], dict]]:
    async def main() -> list[tuple[float, float, list[float], dict]]:
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn) as session:
            return await asyncio.gather(*(_stream(session, url, max_tokens) for _ in range(n)))

    return asyncio.run(main())


def test_ttft_grows_with_queue_once_slots_are_busy(start_mock: StartMock) -> None:
    server = start_mock(
        engine_config(
            max_num_seqs=4,
            prefill_overhead_ms=20.0,
            decode_step_ms=4.0,
            decode_step_ms_per_seq=0.0,
            output_tokens={"dist": "fixed", "value": 30},
        )
    )
    results = _run_streams(server.url, 16, 30)
    header_ttft = sorted(r[1] for r in results)
    client_ttft = sorted(r[0] for r in results)
    queue = sorted(float(r[3]["x-mock-queue-ms"]) for r in results)
    groups = [np.mean(header_ttft[i : i + 4]) for i in range(0, 16, 4)]
    # one generation = 20 ms prefill + 29 steps x 4 ms = 136 ms; each wave waits one more
    assert groups[0] < 0.06
    for before, after in itertools.pairwise(groups):
        assert 0.09 < after - before < 0.35
    assert queue[:4] == pytest.approx([0, 0, 0, 0], abs=15.0)
    assert queue[-1] > 300.0
    # what the client saw is not earlier than what the engine scheduled
    assert all(c >= h - 0.005 for c, h in zip(client_ttft, header_ttft, strict=True))


def test_itl_grows_with_running_sequences(start_mock: StartMock) -> None:
    server = start_mock(
        engine_config(
            max_num_seqs=256,
            prefill_overhead_ms=5.0,
            decode_step_ms=4.0,
            decode_step_ms_per_seq=0.5,
            output_tokens={"dist": "fixed", "value": 60},
        )
    )

    def mean_itl(n: int) -> float:
        runs = _run_streams(server.url, n, 60)
        gaps = [np.diff(r[2]).mean() for r in runs]
        return float(np.median(gaps))

    alone = mean_itl(1)
    loaded = mean_itl(40)
    # the profile says 4 ms alone and 4 + 39 x 0.5 = 23.5 ms with 40 running
    assert alone == pytest.approx(0.004, abs=0.003)
    assert 0.8 * 0.0235 < loaded < 1.4 * 0.0235
    assert loaded / alone > 3.0
