"""Read requests.csv into numpy column arrays, fast enough for millions of rows.

numpy's C text reader splits the lines (honouring quotes: error texts may hold commas)
in chunks of a few tens of MB; each column is then converted in one vectorised call.
A last line without its newline is what a killed writer can leave behind: it is
dropped and reported in `Records.truncated` rather than failing the whole run. Anything
else malformed is a `UserError` naming file:line and the column.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loadkit.errors import UserError
from loadkit.results.schema import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS

_CHUNK_BYTES = 32 << 20


@dataclass(frozen=True)
class Records:
    """Column arrays (float64 with NaN for empty cells, int64, or str) keyed by column name."""

    path: Path
    columns: dict[str, np.ndarray] = field(repr=False)
    n: int
    truncated: bool = False
    notes: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __len__(self) -> int:
        return self.n


def _numeric(path: Path, name: str, cells: np.ndarray, first_line: int, col: int) -> np.ndarray:
    is_int = name in INT_COLUMNS
    try:  # fast path: no empty cells
        return cells.astype(np.int64 if is_int else np.float64)
    except ValueError:
        pass
    arr = cells.astype(str)
    empty = arr == ""
    if empty.any():
        if is_int:
            bad = int(np.flatnonzero(empty)[0])
            raise UserError(
                f"{path}:{first_line + bad}:{col + 1}: {name}: empty, expected an integer"
            )
        arr = np.where(empty, "nan", arr)
    try:
        return arr.astype(np.int64 if is_int else np.float64)
    except ValueError:
        for i, cell in enumerate(arr.tolist()):
            try:
                int(cell) if is_int else float(cell)
            except ValueError:
                kind = "an integer" if is_int else "a number"
                raise UserError(
                    f"{path}:{first_line + i}:{col + 1}: {name}: expected {kind}, got {cell!r}"
                ) from None
        raise


def _check_shape(path: Path, text: str, first_line: int) -> None:
    """Find the first bad line of a chunk numpy refused, for a file:line:column message."""
    ncol = len(COLUMNS)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for row in reader:
            line = first_line + reader.line_num - 1
            if len(row) != ncol:
                if not row:
                    continue
                where = f"{path}:{line}:{min(len(row), ncol) + 1}"
                raise UserError(f"{where}: expected {ncol} fields, got {len(row)}")
    except csv.Error as exc:
        raise UserError(f"{path}:{first_line + reader.line_num - 1}: {exc}") from None


def _parse_chunk(path: Path, text: str, first_line: int) -> dict[str, np.ndarray]:
    try:
        table = np.loadtxt(
            io.StringIO(text), delimiter=",", quotechar='"', dtype=object, ndmin=2, comments=None
        )
    except ValueError:
        _check_shape(path, text, first_line)
        raise
    if table.shape[1] != len(COLUMNS):
        _check_shape(path, text, first_line)
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(COLUMNS):
        cells = table[:, i]
        if name in FLOAT_COLUMNS or name in INT_COLUMNS:
            out[name] = _numeric(path, name, cells, first_line, i)
        else:
            out[name] = np.ascontiguousarray(cells)
    return out


def _body_and_tail(raw: bytes) -> tuple[bytes, bytes]:
    """Split off a last line that has no newline (a writer killed mid-line)."""
    if not raw or raw.endswith(b"\n"):
        return raw, b""
    cut = raw.rfind(b"\n") + 1
    return raw[:cut], raw[cut:]


def read_records(path: str | os.PathLike[str]) -> Records:
    """Load a requests.csv; raises `UserError` for a missing or corrupt file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {p}: {exc.strerror or exc}") from None
    body, tail = _body_and_tail(raw)
    notes: list[str] = []
    if tail:
        line_no = body.count(b"\n") + 1
        notes.append(f"{p}:{line_no}: dropped an incomplete last line ({len(tail)} bytes)")
    head_end = body.find(b"\n")
    if head_end < 0:
        if tail:
            return _empty(p, truncated=True, notes=notes)
        raise UserError(f"{p}:1: empty file, expected the header {','.join(COLUMNS[:3])},...")
    header = body[:head_end].decode("utf-8", "replace").rstrip("\r").split(",")
    if tuple(header) != COLUMNS:
        missing = [c for c in COLUMNS if c not in header]
        extra = [c for c in header if c not in COLUMNS]
        detail = f"missing {missing}" if missing else f"unexpected {extra}" if extra else "order"
        raise UserError(f"{p}:1: not a loadkit requests.csv header ({detail})")

    chunks: list[dict[str, np.ndarray]] = []
    line = 2
    pos = head_end + 1
    while pos < len(body):
        end = body.find(b"\n", min(pos + _CHUNK_BYTES, len(body) - 1)) + 1 or len(body)
        piece = body[pos:end]
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad_line = line + piece[: exc.start].count(b"\n")
            raise UserError(f"{p}:{bad_line}: not UTF-8 text") from None
        if text.strip():
            chunks.append(_parse_chunk(p, text, line))
        line += piece.count(b"\n")
        pos = end
    if not chunks:
        return _empty(p, truncated=bool(tail), notes=notes)
    columns = (
        chunks[0]
        if len(chunks) == 1
        else {name: np.concatenate([c[name] for c in chunks]) for name in COLUMNS}
    )
    n = len(columns["attempt"])
    return Records(p, columns, n=n, truncated=bool(tail), notes=tuple(notes))


def _empty(p: Path, truncated: bool, notes: list[str]) -> Records:
    columns: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        if name in FLOAT_COLUMNS:
            columns[name] = np.zeros(0, dtype=np.float64)
        elif name in INT_COLUMNS:
            columns[name] = np.zeros(0, dtype=np.int64)
        else:
            columns[name] = np.zeros(0, dtype=object)
    return Records(p, columns, n=0, truncated=truncated, notes=tuple(notes))
