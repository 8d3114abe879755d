"""Records from Locust worker processes to the master, which alone writes requests.csv.

With `--processes N` each worker formats its records as CSV lines (the writer's own
format) and sends them in batches at most `interval_s` apart through Locust's message
channel (`runner.send_message` / `register_message`, one ZeroMQ connection per worker, in
order). Each batch carries the worker's id and a sequence number; the master drops a
batch it has already seen, so a row is never counted twice. When a worker's users stop
(Locust's `test_stop`, which fires before the worker reports "client_stopped"), it sends
what is left with `final: true`; the master waits for every worker's final batch before it
closes the file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from loadkit.results.schema import RequestRecord, to_csv_line

MESSAGE = "loadkit_records"
log = logging.getLogger(__name__)


class RecordShipper:
    """Worker side: a record sink (`shipper(record)`) that batches and sends to the master."""

    def __init__(
        self,
        send: Callable[[str, dict[str, Any]], None],
        worker: str,
        interval_s: float = 0.5,
        max_batch: int = 1000,
        on_record: Callable[[RequestRecord], None] | None = None,
    ):
        self._send = send
        self.worker = worker
        self._interval = interval_s
        self._max_batch = max_batch
        self._on_record = on_record
        self._lines: list[str] = []
        self._cost = 0.0
        self._errors = 0
        self._requests = 0  # logical requests (first attempts), for the master's budget total
        self.exhausted = False  # set by the owner when this worker's budget share is spent
        self.reason = ""
        self._seq = 0
        self._first_at: float | None = None
        self._greenlet: Any = None
        self.shipped = 0
        self.state: Callable[[], dict[str, Any]] | None = None  # added to every batch
        self.final_extra: dict[str, Any] = {}  # added to the last batch (the arrivals' tally)

    def __call__(self, record: RequestRecord) -> None:
        if self._on_record is not None:
            self._on_record(record)
        self._lines.append(to_csv_line(record))
        cost = record.cost_usd
        if cost == cost:  # not NaN
            self._cost += cost
        if record.outcome != "ok":
            self._errors += 1
        if record.attempt == 0 and record.outcome != "not_sent":
            self._requests += 1
        if self._first_at is None:
            self._first_at = time.perf_counter()
        if len(self._lines) >= self._max_batch:
            self.flush()

    def start(self) -> None:
        """Spawn the periodic sender greenlet (idempotent)."""
        import gevent

        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._loop)

    def _loop(self) -> None:
        import gevent

        while True:
            gevent.sleep(self._interval)
            self.flush()

    def flush(self, final: bool = False) -> None:
        if not self._lines and not final:
            return
        lines, self._lines = self._lines, []
        cost, self._cost = self._cost, 0.0
        errors, self._errors = self._errors, 0
        requests, self._requests = self._requests, 0
        self._first_at = None
        self._seq += 1
        payload: dict[str, Any] = {
            "worker": self.worker,
            "seq": self._seq,
            "lines": lines,
            "cost": cost,
            "errors": errors,
            "requests": requests,
        }
        if self.exhausted:
            payload["exhausted"] = True
            payload["reason"] = self.reason
        if self.state is not None:
            payload.update(self.state())
        if final:
            payload["final"] = True
            payload.update(self.final_extra)
        self._send(MESSAGE, payload)
        self.shipped += len(lines)

    def finish(self) -> None:
        """Send the rest, marked final (on the worker's `test_stop`)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        self.flush(final=True)


class RecordReceiver:
    """Master side: the `register_message` listener that appends shipped lines to the writer."""

    def __init__(self, write_line: Callable[[str], None]):
        self._write_line = write_line
        self._seen: set[tuple[str, int]] = set()
        self.rows = 0
        self.rows_by_worker: dict[str, int] = {}
        self.cost_usd = 0.0
        self.duplicates = 0
        self.finished: set[str] = set()
        self.workers: set[str] = set()

    def __call__(self, environment: Any = None, msg: Any = None, **_: Any) -> None:
        data = msg.data
        worker = str(data["worker"])
        key = (worker, int(data["seq"]))
        self.workers.add(worker)
        if key in self._seen:
            self.duplicates += 1
            return
        self._seen.add(key)
        for line in data["lines"]:
            self._write_line(line)
        self.rows += len(data["lines"])
        self.rows_by_worker[worker] = self.rows_by_worker.get(worker, 0) + len(data["lines"])
        self.cost_usd += float(data.get("cost", 0.0))
        if data.get("final"):
            self.finished.add(worker)

    def reset_finals(self) -> None:
        self.finished.clear()

    def wait_final(self, expected: int, timeout_s: float) -> bool:
        """Wait (in a greenlet) until `expected` workers sent their final batch."""
        import gevent

        deadline = time.perf_counter() + timeout_s
        while len(self.finished) < expected:
            if time.perf_counter() > deadline:
                log.warning(
                    "records: %d of %d workers sent their last batch in time",
                    len(self.finished),
                    expected,
                )
                return False
            gevent.sleep(0.05)
        return True
