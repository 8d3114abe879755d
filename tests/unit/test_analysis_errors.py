"""The top error messages: one row per cause, per-request noise masked, shown in the report."""

from __future__ import annotations

from pathlib import Path

from loadkit.analysis.errors import message_key, top_errors
from loadkit.report.build import build_report
from loadkit.results.schema import HEADER_LINE, to_csv_line
from tests.analysis_support import columns, failed
from tests.records import FAILED, record


def test_per_request_ids_and_numbers_are_masked():
    a = message_key(
        "HTTP 503: upstream req_8f3a9c2b1d said no (id 5b2e6c1f-0d4a-4c3e-9b1a-2f6d8e7c9a10)"
    )
    b = message_key(
        "HTTP 503: upstream req_11aa22bb33 said no (id 0e1d2c3b-4a59-6877-8695-a4b3c2d1e0f9)"
    )
    assert a == b == "HTTP 503: upstream … said no (id …)"
    assert message_key("context length 8192 exceeded by 12345678 tokens") == (
        "context length 8192 exceeded by … tokens"
    )
    assert len(message_key("x" * 500)) == 200


def test_groups_by_outcome_region_and_message_most_frequent_first():
    rows = [dict(request_id=f"ok{i}", t_sent=i * 10.0) for i in range(5)]
    rows += [
        failed(request_id=f"a{i}", t_sent=1000.0 + i, error=f"HTTP 503: busy req_{i:08d}x")
        for i in range(3)
    ]
    rows += [
        failed(request_id="b", t_sent=2000.0, region="eu", error="HTTP 503: busy req_abcdefgh")
    ]
    rows += [
        failed(request_id="c", t_sent=3000.0, outcome="timeout", status=0, error=""),
    ]
    top = top_errors(columns(rows))
    assert [(e["outcome"], e["region"], e["attempts"]) for e in top] == [
        ("http_error", "na", 3),
        ("http_error", "eu", 1),
        ("timeout", "na", 1),
    ]
    first = top[0]
    assert first["message"] == "HTTP 503: busy …" and first["statuses"] == [503]
    assert first["share_of_failed"] == 0.6 and (first["first_s"], first["last_s"]) == (1.0, 1.002)
    assert top[2]["message"] == "(no message)" and top[2]["statuses"] == []
    assert top_errors(columns(rows[:5])) == []


def test_the_report_has_the_table_and_summary_json_the_rows(tmp_path: Path):
    recs = [record(request_id=f"q{i}", t_sent=i * 100.0) for i in range(30)]
    recs += [
        record(**{**FAILED, "request_id": f"f{i}", "t_sent": 500.0 + i, "error": "HTTP 503: nope"})
        for i in range(4)
    ]
    (tmp_path / "requests.csv").write_text(HEADER_LINE + "".join(map(to_csv_line, recs)))
    result = build_report(tmp_path)
    (row,) = result.summary["errors"]
    assert row["message"] == "HTTP 503: nope" and row["attempts"] == 4
    html = result.html.read_text()
    assert "Top error messages" in html and "<code>HTTP 503: nope</code>" in html
