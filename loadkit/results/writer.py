"""Append request records to requests.csv as they arrive, never losing more than a second.

Rows are formatted when they arrive and written in batches with one `os.write` per
batch of whole lines: a process killed at any moment leaves a file that ends on a line
boundary (what was not yet written is lost, never half a row). A batch is written at the
latest one second after its first row arrived, by a daemon timer (a greenlet when gevent
has patched threading, as under Locust), and on `flush()`/`close()`.

A write that fails (a full disk: ENOSPC) never raises into the run: the file is cut back to
its last whole line, the writer stops writing (so the file stays a complete record of the
run's first `rows_written` attempts, never one with a gap) and counts the rows it could not
write (`rows_lost`); `error` says why. The run's end reports it (`status()`).
"""

from __future__ import annotations

import contextlib
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
        self.rows_lost = 0
        self.error: str | None = None  # why rows could not be written (e.g. a full disk)
        self._size = os.fstat(self._fd).st_size  # bytes of whole lines in the file
        if self._size == 0:
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
            if self.error is not None:
                self.rows_lost += len(batch)
                return
            try:
                self._write_all("".join(batch).encode())
            except OSError as exc:
                self._failed(exc)
                self.rows_lost += len(batch)
                return
            self.rows_written += len(batch)

    def status(self) -> dict[str, object]:
        """Rows written, and rows lost with the reason when a write failed."""
        if self.error is None:
            return {"rows": self.rows_written}
        return {"rows": self.rows_written, "rows_lost": self.rows_lost, "write_error": self.error}

    def _failed(self, exc: OSError) -> None:
        """Cut a half-written batch back to the last whole line; write nothing more."""
        self.error = f"{self.path}: {exc.strerror or exc}"
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._size)

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
        self._size += len(data)

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
