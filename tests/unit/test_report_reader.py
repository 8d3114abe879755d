"""The reader's byte-level fast path (used for million-row reports) gives exactly what the
csv module reads, with quoted error texts, unicode, empty cells and many chunks."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from loadkit.errors import UserError
from loadkit.results import reader
from loadkit.results.reader import read_records
from loadkit.results.schema import COLUMNS, FLOAT_COLUMNS, INT_COLUMNS, RequestRecord
from loadkit.results.writer import RecordWriter
from tests.records import record


def _record(i: int, rng: np.random.Generator) -> RequestRecord:
    errors = ["", "", "", 'upstream said "no", twice', "délai dépassé, réessayez", "a,b,c"]
    return record(
        run_id="run",
        request_id=f"r{i // 2}",
        attempt=i % 2,
        worker=f"w{i % 3}",
        region=["na", "eu", "ap-南"][i % 3],
        workload="chat",
        session_id=f"s{i // 4}",
        turn=i % 4,
        model="gpt-4o-mini",
        endpoint="chat",
        t_intended=math.nan if i % 5 == 0 else float(i * 10),
        t_sent=float(i * 10) + 0.125,
        sched_lag_ms=math.nan if i % 2 else float(rng.random()),
        ttft_ms=math.nan if i % 7 == 0 else float(rng.lognormal(5, 1)),
        e2e_ms=float(rng.lognormal(7, 1)),
        itl_mean_ms=float(rng.random() * 20),
        itl_p99_ms=math.nan,
        itl_max_ms=float(rng.random() * 90),
        status=[200, 429, 503][i % 3],
        outcome=["ok", "rate_limited", "http_error"][i % 3],
        error=errors[i % len(errors)],
        prompt_tokens=int(rng.integers(0, 5000)),
        completion_tokens=int(rng.integers(0, 900)),
        cached_tokens=0,
        tokens_source="server",
        cost_usd=float(rng.random() * 1e-3),
        fault="" if i % 4 else "f-1",
    )


def _csv_module(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    return {c: [r[i] for r in rows] for i, c in enumerate(COLUMNS)}


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 4096, 700])
def test_fast_path_equals_the_csv_module(tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(reader, "_CHUNK_BYTES", chunk_bytes)
    path = tmp_path / "requests.csv"
    rng = np.random.default_rng(5)
    with RecordWriter(path) as w:
        for i in range(600):
            w.write(_record(i, rng))
    got = read_records(path)
    want = _csv_module(path)
    assert got.n == 600 and not got.truncated
    for c in COLUMNS:
        col = got[c]
        if c in FLOAT_COLUMNS:
            expect = np.array([float(x) if x else np.nan for x in want[c]])
            assert col.dtype == np.float64 and np.array_equal(col, expect, equal_nan=True), c
        elif c in INT_COLUMNS:
            assert col.dtype == np.int64 and col.tolist() == [int(x) for x in want[c]], c
        else:
            assert col.dtype == object and col.tolist() == want[c], c
            assert all(type(x) is str for x in col.tolist()), c


def test_text_columns_share_one_object_per_value(tmp_path):
    path = tmp_path / "requests.csv"
    rng = np.random.default_rng(1)
    with RecordWriter(path) as w:
        for i in range(300):
            w.write(_record(i, rng))
    region = read_records(path)["region"]
    assert len({id(x) for x in region.tolist()}) == 3


def test_fast_path_declines_what_it_cannot_take(tmp_path):
    good = _record_line().encode()
    assert reader._fast_chunk(good, COLUMNS) is not None
    for bad in (
        good.replace(b"\n", b"\r\n"),  # carriage returns
        good + b"\n" + good,  # a blank line
        good.replace(b",chat,", b",chat,x,", 1),  # an extra field
        good.replace(b"gpt-4o-mini", b"\xff", 1),  # not UTF-8
        good.replace(b",429,", b",4x9,", 1),  # not an integer
    ):
        assert reader._fast_chunk(bad, COLUMNS) is None, bad
    # the careful path still reads a CRLF file, and still names a bad cell
    path = tmp_path / "requests.csv"
    header = (",".join(COLUMNS) + "\n").encode()
    path.write_bytes(header + good.replace(b"\n", b"\r\n"))
    assert read_records(path).n == 1
    path.write_bytes(header + good + good.replace(b",429,", b",4x9,", 1))
    with pytest.raises(UserError, match=r"requests\.csv:3:19: status: expected an integer"):
        read_records(path)


def _record_line() -> str:
    from loadkit.results.schema import to_csv_line

    return to_csv_line(_record(1, np.random.default_rng(0)))


@pytest.mark.parametrize("odd_id", ["", "r-ünïcode"])
def test_mostly_distinct_text_columns_decode_like_the_csv_module(tmp_path, odd_id):
    from dataclasses import replace

    path = tmp_path / "requests.csv"
    rng = np.random.default_rng(2)
    with RecordWriter(path) as w:
        for i in range(3000):
            rec = replace(_record(i, rng), request_id=f"req-{i:05d}")
            if odd_id and i == 2500:
                rec = replace(rec, request_id=odd_id)
            w.write(rec)
    got = read_records(path)["request_id"].tolist()
    assert got == _csv_module(path)["request_id"]
    assert all(type(x) is str for x in got)
    assert (odd_id in got) == bool(odd_id)
