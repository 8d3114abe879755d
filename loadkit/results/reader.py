"""Read requests.csv into numpy column arrays, fast enough for millions of rows.

The fast path works on the raw bytes of a chunk: the positions of commas and newlines
give every field's span, each column is gathered into a fixed-width bytes array and
converted in one vectorised call (`astype`), and text columns become object arrays that
share one `str` per distinct value (a million rows of `region` hold a handful of strings,
not a million). Lines holding a quote (an error text with a comma) go through the csv
module. A chunk the fast path cannot take (a bad line, a stray carriage return, a NUL) goes
through numpy's C text reader, which also names the bad line, file:line:column.
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
from loadkit.results.schema import (
    COLUMNS,
    DEFAULTS,
    FIRST_COLUMNS,
    FLOAT_COLUMNS,
    HEADER_PREFIX,
    INT_COLUMNS,
)

_CHUNK_BYTES = 8 << 20


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


def _check_shape(path: Path, text: str, first_line: int, ncol: int) -> None:
    """Find the first bad line of a chunk numpy refused, for a file:line:column message."""
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


def _parse_chunk(
    path: Path, text: str, first_line: int, names: tuple[str, ...]
) -> dict[str, np.ndarray]:
    try:
        table = np.loadtxt(
            io.StringIO(text), delimiter=",", quotechar='"', dtype=object, ndmin=2, comments=None
        )
    except ValueError:
        _check_shape(path, text, first_line, len(names))
        raise
    if table.shape[1] != len(names):
        _check_shape(path, text, first_line, len(names))
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        cells = table[:, i]
        if name in FLOAT_COLUMNS or name in INT_COLUMNS:
            out[name] = _numeric(path, name, cells, first_line, i)
        else:
            out[name] = np.ascontiguousarray(cells)
    return out


_COMMA, _NL, _CR, _QUOTE = 44, 10, 13, 34


def _gather(
    padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray, min_width: int = 1
) -> np.ndarray:
    """The byte spans [start, start+length) as one fixed-width bytes array.

    `padded` is the chunk followed by at least the widest field's worth of spare bytes, so a
    strided window view can copy each span's row in one fancy-indexing call.
    """
    width = max(int(lengths.max()) if lengths.size else 0, min_width)
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    mat = windows[starts]
    mat[np.arange(width) >= lengths[:, None]] = 0
    return mat.view(f"S{width}").ravel()


def _fast_chunk(piece: bytes, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """Columns of a chunk of whole lines (text columns as bytes arrays), or None to fall back."""
    ncol = len(names)
    buf = np.frombuffer(piece, dtype=np.uint8)
    nl = np.flatnonzero(buf == _NL)
    # a NUL byte would be lost: numpy's fixed-width bytes drop trailing NULs
    if nl.size == 0 or nl[-1] != buf.size - 1 or (buf == _CR).any() or (buf == 0).any():
        return None
    line_start = np.empty(nl.size, dtype=np.int64)
    line_start[0] = 0
    line_start[1:] = nl[:-1] + 1
    if (nl == line_start).any():  # a blank line: leave it to the careful path
        return None
    if not (buf < 128).all():
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            return None
    comma = np.flatnonzero(buf == _COMMA)
    quoted = np.zeros(nl.size, dtype=bool)
    quote_pos = np.flatnonzero(buf == _QUOTE)
    if quote_pos.size:
        quoted[np.searchsorted(nl, quote_pos)] = True
        comma = comma[~quoted[np.searchsorted(nl, comma)]]
    plain = np.flatnonzero(~quoted)
    if comma.size != plain.size * (ncol - 1):
        return None
    grid = comma.reshape(plain.size, ncol - 1)
    # sorted commas, the right total, and each row's first and last inside its line:
    # then every line holds exactly ncol - 1 of them
    if (grid[:, 0] < line_start[plain]).any() or (grid[:, -1] > nl[plain]).any():
        return None
    ends = np.empty((plain.size, ncol), dtype=np.int64)
    ends[:, :-1] = grid
    ends[:, -1] = nl[plain]
    starts = np.empty_like(ends)
    starts[:, 0] = line_start[plain]
    starts[:, 1:] = ends[:, :-1] + 1
    lengths = ends - starts
    # every line may hold a quoted field (a service that rejects every request with a message
    # holding a comma): then no line is plain and the spans are empty
    widest = int(lengths.max()) if lengths.size else 0
    padded = np.concatenate([buf, np.zeros(widest + 4, dtype=np.uint8)])
    rows: list[list[str]] = []
    if quote_pos.size:
        for i in np.flatnonzero(quoted).tolist():
            line = piece[line_start[i] : nl[i]].decode("utf-8")
            try:
                row = next(csv.reader([line], strict=True))
            except csv.Error:
                return None
            if len(row) != ncol:
                return None
            rows.append(row)
    out: dict[str, np.ndarray] = {}
    for j, name in enumerate(names):
        is_num = name in FLOAT_COLUMNS or name in INT_COLUMNS
        cells = _gather(padded, starts[:, j], lengths[:, j], 3 if is_num else 1)
        if is_num:
            if name in INT_COLUMNS:
                if (lengths[:, j] == 0).any():
                    return None
                dtype: type = np.int64
            else:
                cells[lengths[:, j] == 0] = b"nan"
                dtype = np.float64
            try:
                values = cells.astype(dtype)
            except ValueError:
                return None
        else:
            values = cells
        if rows:
            extra = [r[j] for r in rows]
            if is_num:
                try:
                    q = np.array(
                        [int(x) if dtype is np.int64 else float(x or "nan") for x in extra],
                        dtype=dtype,
                    )
                except ValueError:
                    return None
            else:
                q = np.array([x.encode("utf-8") for x in extra], dtype=bytes)
            full = np.empty(nl.size, dtype=np.result_type(values.dtype, q.dtype))
            full[plain] = values
            full[quoted] = q
            values = full
        out[name] = values
    return out


def _text(column: np.ndarray) -> np.ndarray:
    """A bytes column as an object array of str, one shared str per distinct value.

    A column of mostly distinct values (request ids) skips the sort: numpy decodes ASCII in
    one C loop (non-ASCII text takes the sorted path, which decodes UTF-8).
    """
    sample = column[:4096]
    if sample.size >= 1024 and np.unique(sample).size > sample.size // 2:
        try:
            return column.astype(np.str_).astype(object)
        except UnicodeDecodeError:
            pass
    uniques, inverse = np.unique(column, return_inverse=True)
    decoded = np.empty(uniques.size, dtype=object)
    decoded[:] = [u.decode("utf-8") for u in uniques.tolist()]
    return decoded[inverse.ravel()]


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
    names = _known_layout(tuple(header))
    if names is None:
        missing = [c for c in COLUMNS if c not in header]
        extra = [c for c in header if c not in COLUMNS and not c.startswith(HEADER_PREFIX)]
        detail = f"missing {missing}" if missing else f"unexpected {extra}" if extra else "order"
        raise UserError(f"{p}:1: not a loadkit requests.csv header ({detail})")

    chunks: list[dict[str, np.ndarray]] = []
    line = 2
    pos = head_end + 1
    while pos < len(body):
        end = body.find(b"\n", min(pos + _CHUNK_BYTES, len(body) - 1)) + 1 or len(body)
        piece = body[pos:end]
        fast = _fast_chunk(piece, names)
        if fast is not None:
            chunks.append(fast)
        else:
            try:
                text = piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad_line = line + piece[: exc.start].count(b"\n")
                raise UserError(f"{p}:{bad_line}: not UTF-8 text") from None
            if text.strip():
                chunks.append(_parse_chunk(p, text, line, names))
        line += piece.count(b"\n")
        pos = end
    if not chunks:
        return _empty(p, truncated=bool(tail), notes=notes, names=names)
    columns = {}
    for name in names:
        parts = [c[name] for c in chunks]
        if name in FLOAT_COLUMNS or name in INT_COLUMNS:
            columns[name] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        else:
            raw_parts = [x for x in parts if x.dtype.kind == "S"]
            if len(raw_parts) == len(parts):
                columns[name] = _text(np.concatenate(parts) if len(parts) > 1 else parts[0])
            else:  # some chunks took the careful path (object arrays already)
                columns[name] = np.concatenate(
                    [_text(x) if x.dtype.kind == "S" else x for x in parts]
                )
        for c in chunks:
            c.pop(name, None)  # free each chunk's column once it is merged
    n = len(columns["attempt"])
    add_defaults(columns, n)
    return Records(p, columns, n=n, truncated=bool(tail), notes=tuple(notes))


def _known_layout(header: tuple[str, ...]) -> tuple[str, ...] | None:
    """The header's columns if they are this schema's or an earlier one's (a prefix), or
    this schema's followed by recorded response headers (`h_<name>`, text)."""
    n = len(header)
    if n >= len(FIRST_COLUMNS) and header == COLUMNS[:n]:
        return header
    k = len(COLUMNS)
    extra = header[k:]
    if header[:k] == COLUMNS and all(
        c.startswith(HEADER_PREFIX) and len(c) > len(HEADER_PREFIX) for c in extra
    ):
        return header if len(set(extra)) == len(extra) else None
    return None


def add_defaults(columns: dict[str, np.ndarray], n: int) -> None:
    """Columns an older file lacks, at the record's defaults."""
    for name in COLUMNS:
        if name in columns:
            continue
        value = DEFAULTS[name]
        if name in FLOAT_COLUMNS:
            columns[name] = np.full(n, value, dtype=np.float64)
        elif name in INT_COLUMNS:
            columns[name] = np.full(n, value, dtype=np.int64)
        else:
            columns[name] = np.full(n, value, dtype=object)


def _empty(p: Path, truncated: bool, notes: list[str], names: tuple[str, ...] = ()) -> Records:
    columns: dict[str, np.ndarray] = {}
    for name in (*COLUMNS, *(c for c in names if c not in COLUMNS)):
        if name in FLOAT_COLUMNS:
            columns[name] = np.zeros(0, dtype=np.float64)
        elif name in INT_COLUMNS:
            columns[name] = np.zeros(0, dtype=np.int64)
        else:
            columns[name] = np.zeros(0, dtype=object)
    return Records(p, columns, n=0, truncated=truncated, notes=tuple(notes))
