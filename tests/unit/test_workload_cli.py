"""`loadkit trace`: summary of trace files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from loadkit.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "scenarios" / "traces"


def test_trace_summary_prints_the_figures(capsys):
    assert main(["trace", str(EXAMPLES / "burstgpt_example.csv")]) == 0
    out = capsys.readouterr().out
    assert "requests        501  (8 failed)" in out
    assert "inter-arrival   CV" in out and "models          ChatGPT" in out


def test_trace_summary_as_json(capsys):
    assert main(["trace", "--json", str(EXAMPLES / "mooncake_example.jsonl")]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["requests"] == 349 and d["failed"] == 0
    assert d["input_tokens"]["p50"] == 873.0
    assert 0 < d["prefix_blocks"]["distinct"] < d["prefix_blocks"]["total"]


def test_bad_trace_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,x,2\n")
    assert main(["trace", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bad}:2: ContextTokens: expected a non-negative integer, got 'x'\n"
