"""Every file the record writer can write, the reader reads back equal.

A property over whole files: any text in any text column (commas, quotes, newlines,
non-ASCII), files where every row has a quoted field (an error message with a comma on
every attempt, as a service that rejects every request gives), a single row, no rows, and
the recorded response headers' `h_` columns. "Equal" is the record as the writer puts it
on disk: floats at the writer's precision, a newline inside a text as a space (a row is
always one line).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loadkit.results import reader
from loadkit.results.reader import read_records
from loadkit.results.schema import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, RequestRecord
from loadkit.results.writer import RecordWriter
from tests.records import record

TEXT_COLUMNS = [c for c in COLUMNS if c not in FLOAT_COLUMNS and c not in INT_COLUMNS]

# Text a service or a user can put in a record: any character, weighted toward the ones
# CSV cares about.
_awkward = st.sampled_from([",", '"', "\n", "\r", "\r\n", " ", "é", "南", "💥", "\t", ";"])
texts = st.one_of(
    st.text(max_size=12),
    st.lists(st.one_of(_awkward, st.text(max_size=3)), max_size=6).map("".join),
)
floats = st.one_of(st.just(math.nan), st.floats(-1e9, 1e9, allow_nan=False))
ints = st.integers(-(2**31), 2**40)


@st.composite
def records(draw: st.DrawFn, n_headers: int, all_quoted: bool) -> RequestRecord:
    over: dict[str, Any] = {}
    for c in COLUMNS:
        if c in FLOAT_COLUMNS:
            over[c] = draw(floats)
        elif c in INT_COLUMNS:
            over[c] = draw(ints)
        else:
            over[c] = draw(texts)
    if all_quoted:  # what a service rejecting every request with a comma'd message gives
        over["error"] = "HTTP 400: " + over["error"] + ", try increasing it"
    over["headers"] = tuple(draw(texts) for _ in range(n_headers))
    return record(**over)


@st.composite
def files(draw: st.DrawFn) -> tuple[tuple[str, ...], list[RequestRecord]]:
    names = tuple(draw(st.lists(st.sampled_from(["x-a", "x-model-id", "served"]), unique=True)))
    all_quoted = draw(st.booleans())
    rows = draw(st.lists(records(len(names), all_quoted), max_size=12))
    return names, rows


def _on_disk_text(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def _on_disk_float(name: str, value: float) -> float:
    if math.isnan(value):
        return math.nan
    return float(f"{value:.10g}") if name == "cost_usd" else float(f"{value:.3f}")


def _check(path: Path, names: tuple[str, ...], rows: list[RequestRecord]) -> None:
    got = read_records(path)
    assert got.n == len(rows) and not got.truncated
    for c in COLUMNS:
        want = [getattr(r, c) for r in rows]
        col = got[c]
        if c in FLOAT_COLUMNS:
            expect = np.array([_on_disk_float(c, v) for v in want], dtype=np.float64)
            assert col.dtype == np.float64, c
            assert np.array_equal(col, expect, equal_nan=True), c
        elif c in INT_COLUMNS:
            assert col.dtype == np.int64 and col.tolist() == want, c
        else:
            assert col.dtype == object and col.tolist() == [_on_disk_text(v) for v in want], c
    for i, name in enumerate(names):
        column = "h_" + "".join(ch if ch.isalnum() else "_" for ch in name)
        assert got.columns[column].tolist() == [_on_disk_text(r.headers[i]) for r in rows]


def _write(path: Path, names: tuple[str, ...], rows: list[RequestRecord]) -> None:
    path.unlink(missing_ok=True)
    with RecordWriter(path, record_headers=names) as w:
        for r in rows:
            w.write(r)


_CONTEXT_400 = record(
    outcome="http_error",
    status=400,
    error="HTTP 400: request (6019 tokens) exceeds the available context size (4096 tokens), "
    "try increasing it",
)


@given(f=files())
@example(f=((), []))  # no rows
@example(f=((), [_CONTEXT_400]))  # one row, quoted
@example(f=((), [_CONTEXT_400] * 3))  # every row quoted: the fast path's empty reduction
@example(f=(("x-a",), [record(headers=('a,"b"\nc',))]))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_file_the_writer_writes_reads_back_equal(
    tmp_path_factory: pytest.TempPathFactory, f: tuple[tuple[str, ...], list[RequestRecord]]
) -> None:
    names, rows = f
    path = tmp_path_factory.mktemp("rt") / "requests.csv"
    _write(path, names, rows)
    _check(path, names, rows)


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 900])
@pytest.mark.parametrize("quoted_share", [0.0, 0.5, 1.0])
def test_every_row_quoted_reads_in_every_chunking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int, quoted_share: float
) -> None:
    """A service that rejects every request with a message holding a comma: every row has a
    quoted field, in every chunk of a big file (and half, and none, for contrast)."""
    monkeypatch.setattr(reader, "_CHUNK_BYTES", chunk_bytes)
    rows = [
        _CONTEXT_400 if i < quoted_share * 400 else record(request_id=f"r{i}") for i in range(400)
    ]
    path = tmp_path / "requests.csv"
    _write(path, (), rows)
    _check(path, (), rows)
    assert reader._fast_chunk(b'a,"b,c"\n', ("x", "y")) is not None
