"""Trace readers (Azure, Mooncake, BurstGPT), transforms, and replay of the real Azure trace."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from loadkit.errors import UserError
from loadkit.workload.traces import (
    Trace,
    guess_format,
    read_azure,
    read_burstgpt,
    read_mooncake,
    read_trace,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "scenarios" / "traces"
SHARED = REPO.parent / "shared" / "data"
AZURE_CONV = SHARED / "traces" / "AzureLLMInferenceTrace_conv_2023.csv"
AZURE_CODE = SHARED / "traces" / "AzureLLMInferenceTrace_code_2023.csv"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# -- readers on small hand-written inputs ----------------------------------------------------


def test_azure_reader_keeps_100ns_resolution_and_sorts(tmp_path):
    p = _write(
        tmp_path,
        "a.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\r\n"
        "2023-11-16 18:15:46.6805900,374,44\r\n"
        "2023-11-16 18:15:46.6805901,396,109\r\n"
        "2023-11-16 18:15:45.0000000,10,1\r\n",
    )
    t = read_azure(p)
    assert len(t) == 3
    assert t.t_s.tolist() == [0.0, 1.68059, 1.6805901]
    assert t.input_tokens.tolist() == [10, 374, 396]
    assert t.output_tokens.tolist() == [1, 44, 109]
    assert not t.failed.any() and t.source == str(p)


def test_mooncake_reader(tmp_path):
    p = _write(
        tmp_path,
        "m.jsonl",
        '{"timestamp": 0, "input_length": 6955, "output_length": 52, "hash_ids": [0, 1]}\n'
        "\n"
        '{"timestamp": 2500, "input_length": 300, "output_length": 7, "hash_ids": [0, 2]}\n',
    )
    t = read_mooncake(p)
    assert t.t_s.tolist() == [0.0, 2.5]
    assert t.input_tokens.tolist() == [6955, 300]
    assert t.hash_ids == ((0, 1), (0, 2))


def test_burstgpt_reader_marks_zero_response_rows_failed(tmp_path):
    p = _write(
        tmp_path,
        "b.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "45,GPT-4,1087,0,1087,API log\n"
        "46,ChatGPT,417,276,693,Conversation log\n",
    )
    t = read_burstgpt(p)
    assert t.t_s.tolist() == [0.0, 40.0, 41.0]
    assert t.failed.tolist() == [False, True, False]
    assert t.model.tolist() == ["ChatGPT", "GPT-4", "ChatGPT"]
    assert len(t.ok()) == 2


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "x.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n"
            "2023-11-16 18:15:46.68,1,2\n2023-11-16 18:15:47.68,abc,2\n",
            "x.csv:3: ContextTokens: expected a non-negative integer, got 'abc'",
        ),
        (
            "x.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,1,-2\n",
            "x.csv:2: GeneratedTokens: expected a non-negative integer, got '-2'",
        ),
        (
            "x.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n",
            "x.csv:2: TIMESTAMP: expected a date and time",
        ),
        ("x.csv", "TIMESTAMP,ContextTokens\n", "x.csv:1: missing column(s) GeneratedTokens"),
        (
            "x.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,1\n",
            "x.csv:2: expected 3 fields, got 2",
        ),
        ("x.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n", "x.csv: no requests"),
        (
            "m.jsonl",
            '{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 1,\n',
            "m.jsonl:2: not valid JSON",
        ),
        (
            "m.jsonl",
            '{"timestamp": 0, "input_length": 5}\n',
            "m.jsonl:1: output_length: missing",
        ),
        (
            "m.jsonl",
            '{"timestamp": 0, "input_length": 5, "output_length": 1}\n'
            '{"timestamp": 9, "input_length": 5.5, "output_length": 1}\n',
            "m.jsonl:2: input_length: expected a non-negative integer, got 5.5",
        ),
        (
            "m.jsonl",
            '{"timestamp": "soon", "input_length": 5, "output_length": 1}\n',
            "m.jsonl:1: timestamp: expected a number",
        ),
        (
            "b.csv",
            "Timestamp,Model,Request tokens,Response tokens\nfive,ChatGPT,1,1\n",
            "b.csv:2: Timestamp: expected a number, got 'five'",
        ),
    ],
)
def test_bad_input_names_file_line_and_column(tmp_path, name, text, message):
    p = _write(tmp_path, name, text)
    with pytest.raises(UserError) as err:
        read_trace(p, {"x.csv": "azure", "m.jsonl": "mooncake", "b.csv": "burstgpt"}[name])
    assert str(err.value).startswith(str(tmp_path / message.split(":")[0]))
    assert message in str(err.value)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(UserError, match="no such trace file"):
        read_trace(tmp_path / "nope.csv")
    p = _write(tmp_path, "odd.csv", "a,b\n1,2\n")
    with pytest.raises(UserError, match="cannot tell the trace format"):
        read_trace(p)
    with pytest.raises(UserError, match="unknown trace format"):
        read_trace(p, "parquet")


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("azure_conv_example.csv", "azure"),
        ("azure_code_example.csv", "azure"),
        ("mooncake_example.jsonl", "mooncake"),
        ("burstgpt_example.csv", "burstgpt"),
    ],
)
def test_example_traces_read_and_format_is_guessed(name, fmt):
    path = EXAMPLES / name
    assert guess_format(path) == fmt
    t = read_trace(path)
    assert len(t) > 100 and t.t_s[0] == 0.0 and np.all(np.diff(t.t_s) >= 0)
    assert t.input_tokens.min() >= 1


# -- transforms ------------------------------------------------------------------------------


def _trace(n: int = 1000, seed: int = 0) -> Trace:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(0.1, n))
    t -= t[0]
    return Trace(
        t_s=t,
        input_tokens=rng.integers(1, 5000, n),
        output_tokens=rng.integers(1, 500, n),
        failed=np.zeros(n, dtype=bool),
        hash_ids=tuple((i,) for i in range(n)),
    )


def _rows(t: Trace) -> tuple:
    return t.hash_ids, t.input_tokens, t.output_tokens


def test_time_scale_speeds_up():
    t = _trace()
    fast = t.time_scale(4.0)
    assert np.array_equal(fast.t_s, t.t_s / 4.0)
    assert np.array_equal(fast.input_tokens, t.input_tokens)
    with pytest.raises(ValueError):
        t.time_scale(0)


@pytest.mark.parametrize("k", [0.25, 0.5, 1.0, 2.0, 3.5])
def test_rate_scale_thins_or_multiplies(k):
    t = _trace(4000)
    s = t.rate_scale(k, np.random.default_rng(1))
    assert len(s) == pytest.approx(k * len(t), rel=0.05)
    assert np.all(np.diff(s.t_s) >= 0)
    assert s.duration_s <= t.duration_s + 1.0
    # every row is one of the originals (tokens and hash_ids travel together)
    orig = {h[0]: (int(i), int(o)) for h, i, o in zip(*_rows(t), strict=True)}
    assert all(orig[h[0]] == (int(i), int(o)) for h, i, o in zip(*_rows(s), strict=True))


def test_window_selects_and_shifts():
    t = _trace()
    w = t.window(10.0, 20.0)
    sel = (t.t_s >= 10.0) & (t.t_s < 20.0)
    assert len(w) == int(sel.sum())
    assert np.array_equal(w.t_s, t.t_s[sel] - 10.0)
    assert np.array_equal(w.input_tokens, t.input_tokens[sel])
    with pytest.raises(ValueError):
        t.window(5.0, 5.0)


def test_trace_region_assignment_honours_shares():
    t = _trace(20_000).assign_regions([0.6, 0.4], np.random.default_rng(2))
    assert np.bincount(t.region) / len(t) == pytest.approx([0.6, 0.4], abs=0.015)


# -- the real Azure 2023 traces --------------------------------------------------------------


def _reference(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Independent parse with the csv module and datetime: integer ns, tokens."""
    ns, inp, out = [], [], []
    with path.open(newline="") as f:
        rows = csv.reader(f)
        next(rows)
        for stamp, c, g in rows:
            whole, frac = stamp.split(".")
            base = dt.datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
            ns.append(int(base.timestamp()) * 10**9 + int(frac.ljust(9, "0")))
            inp.append(int(c))
            out.append(int(g))
    return np.array(ns), np.array(inp), np.array(out)


@pytest.mark.skipif(not AZURE_CONV.exists(), reason="shared Azure traces are not present")
@pytest.mark.parametrize("path", [AZURE_CONV, AZURE_CODE], ids=["conv", "code"])
@pytest.mark.parametrize("speed", [1.0, 2.0, 7.5])
def test_azure_replay_reproduces_count_gaps_and_percentiles_exactly(path, speed):
    from loadkit.workload.distributions import Constant
    from loadkit.workload.plan import plan_trace
    from loadkit.workload.sessions import Workload

    ns, inp, out = _reference(path)
    assert np.all(np.diff(ns) >= 0)  # published sorted: no reordering changes the rows
    trace = read_azure(path).time_scale(speed)
    plan = plan_trace(trace, Workload("replay", Constant(1), Constant(1)), seed=1)
    sess = plan.sessions[0]
    assert len(plan) == len(ns) == sess.n_turns
    ref_t = ((ns - ns[0]) / 1e9) / speed
    assert np.array_equal(plan.t_s, ref_t)
    assert np.array_equal(np.diff(plan.t_s), np.diff(ref_t))
    qs = [50, 90, 99, 99.9]
    assert np.array_equal(np.percentile(sess.prompt_tokens, qs), np.percentile(inp, qs))
    assert np.array_equal(np.percentile(sess.output_tokens, qs), np.percentile(out, qs))
    assert np.array_equal(sess.prompt_tokens, inp) and np.array_equal(sess.output_tokens, out)


@pytest.mark.skipif(not AZURE_CONV.exists(), reason="shared Azure traces are not present")
def test_azure_figures_match_the_shared_readme():
    """Figures quoted in ../shared/data/README.md (rate, gap CV, token p50/p90/p99)."""
    conv, code = read_azure(AZURE_CONV), read_azure(AZURE_CODE)
    assert len(conv) == 19_366 and len(code) == 8_819
    for t, rate, cv, pin, pout in [
        (conv, 5.53, 1.09, (1020, 2735, 4142), (129, 424, 601)),
        (code, 2.57, 13.2, (1469, 5188, 7436), (13, 55, 251)),
    ]:
        assert t.mean_rate() == pytest.approx(rate, abs=0.005)
        assert t.interarrival_cv() == pytest.approx(cv, abs=0.05)
        assert np.percentile(t.input_tokens, [50, 90, 99]) == pytest.approx(pin, abs=0.5)
        assert np.percentile(t.output_tokens, [50, 90, 99]) == pytest.approx(pout, abs=0.5)


def test_azure_reader_honours_utc_offsets(tmp_path):
    p = _write(
        tmp_path,
        "tz.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2024-05-10 00:00:00.009930+00:00,10,1\n"
        "2024-05-10 02:00:01.009930+02:00,20,2\n"
        "2024-05-10 00:00:02.009930Z,30,3\n",
    )
    t = read_azure(p)
    assert t.t_s.tolist() == [0.0, 1.0, 2.0]
    assert t.input_tokens.tolist() == [10, 20, 30]
