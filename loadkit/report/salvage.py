"""Read what can be read from a damaged requests.csv, so a corrupt line costs that line and
not the whole report.

`read_records` refuses a corrupt file with the first bad line's file:line:column; this
keeps every well-formed row instead and says how many lines it skipped and why (the
first few reasons). Slower than the fast reader: it is used only after that one refused.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from loadkit.results.reader import Records, add_defaults
from loadkit.results.schema import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS

_MAX_REASONS = 5


def salvage(path: Path, first_error: str) -> Records:
    """Every well-formed row of `path` (header already checked by the fast reader)."""
    raw = path.read_bytes()
    header = raw.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r").split(",")
    # an older file has a prefix of today's columns; a newer one may add h_<name> columns
    names = (*COLUMNS[: len(header)], *header[len(COLUMNS) :])
    ncol = len(names)
    kinds = [float if c in FLOAT_COLUMNS else int if c in INT_COLUMNS else str for c in names]
    rows: list[list[object]] = []
    reasons: list[str] = []
    skipped = 0
    truncated = bool(raw) and not raw.endswith(b"\n")
    lines = raw.decode("utf-8", "replace").split("\n")
    if truncated:
        lines = lines[:-1]
    for line_no, row in _rows(lines[1:], start=2):
        try:
            if row is None:
                raise ValueError("unbalanced quotes")
            if len(row) != ncol:
                raise ValueError(f"expected {ncol} fields, got {len(row)}")
            parsed: list[object] = []
            for name, kind, cell in zip(names, kinds, row, strict=True):
                if kind is float:
                    try:
                        parsed.append(float(cell) if cell else np.nan)
                    except ValueError:
                        raise ValueError(f"{name}: expected a number, got {cell!r}") from None
                elif kind is int:
                    try:
                        parsed.append(int(cell))
                    except ValueError:
                        raise ValueError(f"{name}: expected an integer, got {cell!r}") from None
                else:
                    parsed.append(cell)
            rows.append(parsed)
        except ValueError as exc:
            skipped += 1
            if len(reasons) < _MAX_REASONS:
                reasons.append(f"{path}:{line_no}: {exc}")
    notes = [f"requests.csv is damaged ({first_error}); skipped {skipped} unreadable lines"]
    notes += reasons
    if truncated:
        notes.append(f"{path}: dropped an incomplete last line")
    cols: dict[str, np.ndarray] = {}
    for i, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        vals = [r[i] for r in rows]
        if kind is float:
            cols[name] = np.asarray(vals, dtype=np.float64)
        elif kind is int:
            cols[name] = np.asarray(vals, dtype=np.int64)
        else:
            cols[name] = np.asarray(vals, dtype=object)
    add_defaults(cols, len(rows))
    return Records(path, cols, n=len(rows), truncated=truncated, notes=tuple(notes))


def _rows(lines: list[str], start: int) -> Iterator[tuple[int, list[str] | None]]:
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row: list[str] | None = next(csv.reader([line.rstrip("\r")], strict=True))
        except csv.Error:
            row = None
        yield start + i, row
