"""requests.csv: writer flushes within a second, reader is strict but tolerant."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from loadkit.errors import UserError
from loadkit.results.reader import read_records
from loadkit.results.schema import (
    COLUMNS,
    HEADER_LINE,
    RequestRecord,
    header_column,
    header_line,
    to_csv_line,
)
from loadkit.results.writer import RecordWriter
from tests.records import record


def make_record(i: int = 0, **over: object) -> RequestRecord:
    fields: dict[str, object] = dict(
        run_id="run1",
        request_id=f"r{i}",
        worker="w0",
        region="eu",
        session_id="s1",
        turn=1,
        model="gpt-4o-mini",
        endpoint="/v1/chat/completions",
        t_sent=12.5 + i,
        ttft_ms=101.25,
        e2e_ms=900.0,
        itl_max_ms=25.0,
        completion_tokens=80,
        cost_usd=0.000123,
    )
    return record(**{**fields, **over})


def test_columns_are_the_design_order():
    assert list(COLUMNS) == [
        "run_id",
        "request_id",
        "attempt",
        "worker",
        "region",
        "workload",
        "session_id",
        "turn",
        "model",
        "endpoint",
        "t_intended",
        "t_sent",
        "sched_lag_ms",
        "ttft_ms",
        "e2e_ms",
        "itl_mean_ms",
        "itl_p99_ms",
        "itl_max_ms",
        "status",
        "outcome",
        "error",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "tokens_source",
        "cost_usd",
        "fault",
        "response_model",
        "reconnects",
        "max_tokens",
        "finish_reason",
        "planned_prompt_tokens",
        "served_by",
        "api",
        "endpoint_name",
        "cache_write_tokens",
    ]


def test_round_trip_with_nan_and_awkward_error_text(tmp_path):
    path = tmp_path / "requests.csv"
    records = [
        make_record(0),
        make_record(1, outcome="http_error", status=500, error='boom, "quoted"\nsecond line'),
        make_record(2, ttft_ms=math.nan, fault="latency"),
    ]
    with RecordWriter(path) as w:
        for r in records:
            w.write(r)
    lines = path.read_text().splitlines()
    assert len(lines) == 4  # header + one physical line per record
    recs = read_records(path)
    assert len(recs) == 3 and not recs.truncated
    assert recs["error"][1] == 'boom, "quoted" second line'
    assert recs["status"].tolist() == [200, 500, 200]
    assert recs["status"].dtype == np.int64
    assert recs["ttft_ms"][0] == pytest.approx(101.25)
    assert math.isnan(recs["ttft_ms"][2]) and math.isnan(recs["t_intended"][0])
    assert recs["fault"].tolist() == ["", "", "latency"]
    assert recs["cost_usd"][0] == pytest.approx(0.000123)


def test_writer_appends_without_second_header(tmp_path):
    path = tmp_path / "requests.csv"
    with RecordWriter(path) as w:
        w.write(make_record(0))
    with RecordWriter(path) as w:
        w.write(make_record(1))
    assert path.read_text().count("run_id,") == 1
    assert read_records(path)["request_id"].tolist() == ["r0", "r1"]


def test_writer_flushes_within_a_second_without_close(tmp_path):
    path = tmp_path / "requests.csv"
    w = RecordWriter(path)
    try:
        w.write(make_record(0))
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline and path.read_text().count("\n") < 2:
            time.sleep(0.02)
        waited = 1.5 - (deadline - time.monotonic())
        assert path.read_text().count("\n") == 2, "row not on disk 1.5 s after write"
        assert waited <= 1.2
    finally:
        w.close()


def test_writer_is_safe_from_many_threads(tmp_path):
    import threading

    path = tmp_path / "requests.csv"
    with RecordWriter(path) as w:
        threads = [
            threading.Thread(
                target=lambda k=k: [w.write(make_record(k * 1000 + i)) for i in range(500)]
            )
            for k in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    recs = read_records(path)
    assert len(recs) == 2000
    assert len(set(recs["request_id"].tolist())) == 2000


def test_reader_drops_truncated_last_line_and_says_so(tmp_path):
    path = tmp_path / "requests.csv"
    full = HEADER_LINE + to_csv_line(make_record(0)) + to_csv_line(make_record(1))
    path.write_text(full[:-17])
    recs = read_records(path)
    assert len(recs) == 1 and recs.truncated
    assert "requests.csv:3" in recs.notes[0]


def test_reader_names_file_line_and_column_of_corruption(tmp_path):
    path = tmp_path / "requests.csv"
    bad = to_csv_line(make_record(1)).replace("101.250", "fast", 1)
    path.write_text(HEADER_LINE + to_csv_line(make_record(0)) + bad)
    with pytest.raises(
        UserError, match=r"requests\.csv:3:14: ttft_ms: expected a number, got 'fast'"
    ):
        read_records(path)
    path.write_text(HEADER_LINE + "a,b,c\n")
    with pytest.raises(
        UserError, match=rf"requests\.csv:2:4: expected {len(COLUMNS)} fields, got 3"
    ):
        read_records(path)
    path.write_text("x,y\n")
    with pytest.raises(UserError, match=r"requests\.csv:1: not a loadkit requests\.csv header"):
        read_records(path)
    with pytest.raises(UserError, match="cannot read"):
        read_records(tmp_path / "absent.csv")


def test_reader_handles_header_only_and_many_rows(tmp_path):
    path = tmp_path / "requests.csv"
    path.write_text(HEADER_LINE)
    assert len(read_records(path)) == 0
    line = to_csv_line(make_record(0))
    path.write_text(HEADER_LINE + line * 250_001)  # crosses the chunk boundary
    recs = read_records(path)
    assert len(recs) == 250_001
    assert recs["e2e_ms"].sum() == pytest.approx(900.0 * 250_001)


def test_a_file_from_before_the_added_columns_reads_with_their_defaults(tmp_path):
    """requests.csv written with the first 27 columns (older loadkit) still reads."""
    from loadkit.results.schema import FIRST_COLUMNS

    rec = make_record(3, response_model="served-model", reconnects=1)
    full = to_csv_line(rec).rstrip("\n").split(",")
    old = tmp_path / "requests.csv"
    old.write_text(
        ",".join(FIRST_COLUMNS) + "\n" + ",".join(full[: len(FIRST_COLUMNS)]) + "\n",
        encoding="utf-8",
    )
    cols = read_records(old)
    assert cols.n == 1
    assert cols["response_model"].tolist() == [""]
    assert cols["reconnects"].tolist() == [0]
    assert cols["request_id"].tolist() == ["r3"]
    new = tmp_path / "new.csv"
    new.write_text(HEADER_LINE + to_csv_line(rec), encoding="utf-8")
    cols = read_records(new)
    assert cols["response_model"].tolist() == ["served-model"]
    assert cols["reconnects"].tolist() == [1]


def test_recorded_response_headers_are_h_columns_that_round_trip(tmp_path):
    names = ("x-litellm-model-id", "x-litellm-attempted-retries")
    assert header_column(names[0]) == "h_x_litellm_model_id"
    path = tmp_path / "requests.csv"
    with RecordWriter(path, record_headers=names) as w:
        w.write(make_record(0, served_by="us", headers=("us", "0")))
        w.write(make_record(1, served_by="eu", headers=("eu, the second", "2")))
    assert (
        path.read_text()
        .splitlines()[0]
        .endswith(",cache_write_tokens,h_x_litellm_model_id,h_x_litellm_attempted_retries")
    )
    rec = read_records(path)
    assert rec["served_by"].tolist() == ["us", "eu"]
    assert rec["h_x_litellm_model_id"].tolist() == ["us", "eu, the second"]
    assert rec["h_x_litellm_attempted_retries"].tolist() == ["0", "2"]
    # a column that is neither the schema's nor a recorded header is still refused
    path.write_text(header_line(names).rstrip("\n") + ",surprise\n")
    with pytest.raises(UserError, match=r"not a loadkit requests\.csv header"):
        read_records(path)


def test_a_full_disk_mid_run_leaves_whole_lines_and_counts_what_was_lost(tmp_path, monkeypatch):
    """ENOSPC half-way through a batch: the file is cut back to its last whole line, later
    rows are counted lost (never written after a gap), and nothing raises into the run."""
    import errno
    import os

    from loadkit.results import writer as writer_mod

    path = tmp_path / "requests.csv"
    real_write = os.write
    budget = {"bytes": len(HEADER_LINE) + 2 * len(to_csv_line(make_record(0))) + 40}

    def full_disk(fd: int, data: bytes) -> int:
        if budget["bytes"] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, bytes(data[: budget["bytes"]]))
        budget["bytes"] -= n
        return n

    monkeypatch.setattr(writer_mod.os, "write", full_disk)
    w = RecordWriter(path, flush_interval_s=60)
    for i in range(2):
        w.write(make_record(i))
    w.flush()
    for i in range(2, 5):  # the batch that fills the disk: 40 bytes of it land, then ENOSPC
        w.write(make_record(i))
    w.flush()
    budget["bytes"] = 10**6  # space again: the file must not continue after a gap
    w.write(make_record(5))
    w.close()
    assert w.status() == {
        "rows": 2,
        "rows_lost": 4,
        "write_error": f"{path}: No space left on device",
    }
    assert path.read_bytes().endswith(b"\n")
    got = read_records(path)
    assert got.n == 2 and not got.truncated
    assert got["request_id"].tolist() == ["r0", "r1"]


def test_write_json_leaves_no_empty_temporary_file_on_a_full_disk(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    from loadkit.results import run_folder

    def full(self, *args, **kwargs):
        self.touch()
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError, match="No space left"):
        run_folder.write_json(tmp_path / "summary.json", {"a": 1})
    assert list(tmp_path.iterdir()) == []
