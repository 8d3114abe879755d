"""Append request records to requests.csv as they arrive, never losing more than a second.

Rows are formatted when they arrive and written in batches with one `os.write` per
batch of whole lines: a process killed at any moment leaves a file that ends on a line
boundary (what was not yet written is lost, never half a row). A batch is written at the
latest one second after its first row arrived, by a daemon timer (a greenlet when gevent
has patched threading, as under Locust), and on `flush()`/`close()`.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import TracebackType

from loadkit.results.schema import RequestRecord, header_line, to_csv_line

FLUSH_INTERVAL_S = 1.0
_MAX_PENDING = 2000  # rows; write early under heavy load to bound memory and loss


class RecordWriter:
    """Safe to call `write` from many greenlets or threads; a header is written to a new file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        flush_interval_s: float = FLUSH_INTERVAL_S,
        record_headers: tuple[str, ...] = (),
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._interval = flush_interval_s
        self._closed = False
        self.rows_written = 0
        if os.fstat(self._fd).st_size == 0:
            self._write_all(header_line(record_headers).encode())
        self._wake = threading.Event()
        self._timer = threading.Thread(target=self._run_timer, name="record-writer", daemon=True)
        self._timer.start()

    def __call__(self, record: RequestRecord) -> None:
        self.write(record)

    def write(self, record: RequestRecord) -> None:
        self.write_line(to_csv_line(record))

    def write_line(self, line: str) -> None:
        """Append one pre-formatted CSV line (e.g. shipped from a Locust worker)."""
        if self._closed:
            raise ValueError(f"{self.path} is closed")
        with self._lock:
            self._pending.append(line)
            n = len(self._pending)
        if n == 1:
            self._wake.set()
        elif n >= _MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            self._write_all("".join(batch).encode())
            self.rows_written += len(batch)

    def close(self) -> None:
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._wake.set()
        os.close(self._fd)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _run_timer(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            time.sleep(self._interval * 0.9)
            if self._closed:
                return
            self.flush()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
