"""The hit journal joined with the records: tags a gateway lost, answers it re-ended."""

from __future__ import annotations

import math
from pathlib import Path

from loadkit.analysis.hits import attribute
from loadkit.report.build import build_report
from loadkit.results.faults_schema import (
    HITS_HEADER_LINE,
    FaultHit,
    attempt_key,
    read_fault_hits,
)
from loadkit.results.schema import HEADER_LINE, to_csv_line
from tests.analysis_support import columns, failed
from tests.records import record


def _hit(attempt: str, kind: str = "cut", fault: str = "cut-us", upstream: str = "us") -> FaultHit:
    return FaultHit(1000.0, 1.8e9, fault, kind, attempt, upstream)


def test_the_join_retags_truncates_and_counts_what_the_gateway_absorbed():
    rows = [
        # a cut stream the gateway re-ended with stop + usage: looked ok, was not
        dict(request_id="a", served_by="us", completion_tokens=11),
        # a cut stream whose tag the gateway dropped: failed, untagged
        failed(request_id="b", outcome="stream_cut", served_by="us"),
        # refused before any content; the gateway retried on eu and it succeeded whole
        dict(request_id="c", served_by="eu"),
        # cut, but the answer came from eu (the gateway retried before content): not truncated
        dict(request_id="d", served_by="eu"),
        # untouched
        dict(request_id="e", served_by="eu"),
        # a failure the proxy did tag itself keeps its tag
        failed(request_id="f", fault="other", served_by="us"),
    ]
    hits = [
        _hit(attempt_key("a", 0)),
        _hit(attempt_key("b", 0)),
        _hit(attempt_key("c", 0), kind="refuse", fault="us-down"),
        _hit(attempt_key("d", 0)),
        _hit(attempt_key("f", 0), fault="cut-us"),
        _hit("not-in-these-records/0"),
        _hit(""),  # a request that carried no attempt key
    ]
    cols, joined = attribute(columns(rows), hits)
    assert cols["outcome"].tolist() == ["truncated", "stream_cut", "ok", "ok", "ok", "http_error"]
    assert cols["fault"].tolist() == ["cut-us", "cut-us", "", "", "", "other"]
    assert joined.to_json() == {
        "hits": 7,
        "joined": 5,
        "retagged": 1,
        "truncated": 1,
        "absorbed_by_gateway": 2,
    }


def test_a_run_without_hits_is_unchanged():
    cols = columns([dict(request_id="a")])
    out, joined = attribute(cols, [])
    assert out["outcome"] is cols["outcome"] and joined.hits == 0


def test_the_report_counts_truncated_answers_as_failed(tmp_path: Path):
    recs = [record(request_id=f"q{i}", t_sent=i * 100.0) for i in range(20)]
    (tmp_path / "requests.csv").write_text(HEADER_LINE + "".join(map(to_csv_line, recs)))
    hits = [FaultHit(100.0 * i, math.nan, "cut", "cut", attempt_key(f"q{i}", 0)) for i in (3, 7)]
    (tmp_path / "fault_hits.csv").write_text(HITS_HEADER_LINE + "".join(h.line() for h in hits))
    assert len(read_fault_hits(tmp_path / "fault_hits.csv")) == 2
    result = build_report(tmp_path)
    s = result.summary
    assert s["fault_hits"]["truncated"] == 2
    assert s["requests_ok"] == 18 and s["verdict"]["overall"] == "no-go"
    assert any("re-ended" in n for n in result.notes)


def test_a_tag_without_a_hit_is_not_a_cut_where_the_run_journals_hits():
    """The tag leaves with the headers, before a mid-stream fault acts; an answer shorter
    than `after_tokens` passes whole and journals no hit: it stays `ok`."""
    rows = [
        dict(request_id="short", fault="cut-10"),  # chosen, never acted: no hit
        dict(request_id="long", fault="cut-10"),  # acted: its keyed hit
        dict(request_id="gw", fault="cut-gw"),  # through a gateway that drops the key
    ]
    hits = [
        _hit(attempt_key("long", 0), fault="cut-10", upstream=""),
        _hit("", fault="cut-gw", upstream=""),
    ]
    kinds = {"cut-10": "cut", "cut-gw": "cut"}
    cols, _ = attribute(columns(rows), hits, kinds, journaled=True)
    assert cols["outcome"].tolist() == ["ok", "truncated", "truncated"]
    # without a journal (a hand-driven proxy without --hits) the tag is all there is
    cols, _ = attribute(columns(rows), [], kinds, journaled=False)
    assert cols["outcome"].tolist() == ["truncated", "truncated", "truncated"]
