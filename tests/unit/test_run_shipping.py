"""Worker -> master record shipping: every row once, in order, final batch marked."""

from __future__ import annotations

import math
from types import SimpleNamespace

import gevent

from loadkit.results.schema import RequestRecord
from loadkit.traffic.shipping import MESSAGE, RecordReceiver, RecordShipper
from tests.records import record


def _rec(i: int, worker: str) -> RequestRecord:
    return record(
        run_id="r",
        request_id=f"{worker}-{i}",
        attempt=1,
        worker=worker,
        region="",
        workload="",
        session_id="",
        model="",
        endpoint="",
        t_sent=float(i),
        ttft_ms=1.0,
        e2e_ms=2.0,
        itl_mean_ms=math.nan,
        itl_p99_ms=math.nan,
        itl_max_ms=math.nan,
        prompt_tokens=1,
        completion_tokens=1,
        cost_usd=0.5,
    )


def test_batches_reach_the_master_once() -> None:
    lines: list[str] = []
    receiver = RecordReceiver(lines.append)
    sent: list[dict] = []

    def send(kind: str, data: dict) -> None:
        assert kind == MESSAGE
        sent.append(data)
        receiver(msg=SimpleNamespace(data=data))

    a = RecordShipper(send, "w0", interval_s=0.05, max_batch=7)
    b = RecordShipper(send, "w1", interval_s=0.05)
    a.start()
    b.start()
    for i in range(20):
        a(_rec(i, "w0"))
        b(_rec(i, "w1"))
    gevent.sleep(0.2)  # periodic flush
    for i in range(20, 25):
        a(_rec(i, "w0"))
    a.finish()
    b.finish()
    receiver(msg=SimpleNamespace(data=sent[0]))  # a re-delivered batch is ignored
    assert receiver.duplicates == 1
    assert receiver.rows == len(lines) == 45
    ids = [ln.split(",")[1] for ln in lines]
    assert len(set(ids)) == 45
    assert [i for i in ids if i.startswith("w0")] == [f"w0-{i}" for i in range(25)]  # in order
    assert receiver.cost_usd == 45 * 0.5
    assert receiver.finished == {"w0", "w1"}
    assert receiver.wait_final(2, timeout_s=0.1)
    assert max(len(d["lines"]) for d in sent) <= 20
    assert a.shipped == 25 and b.shipped == 20


def test_wait_final_times_out() -> None:
    r = RecordReceiver(lambda line: None)
    assert not r.wait_final(1, timeout_s=0.1)
