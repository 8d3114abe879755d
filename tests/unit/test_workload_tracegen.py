"""The example-trace generator: reproducible bytes, files in the repo up to date, statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadkit.workload.tracegen import AZURE_CODE_2023, AZURE_CONV_2023, generate, synth_trace
from loadkit.workload.traces import read_trace

EXAMPLES = Path(__file__).resolve().parents[2] / "scenarios" / "traces"


def test_generation_is_reproducible_and_matches_the_committed_examples(tmp_path):
    paths = generate(tmp_path, seed=2023)
    assert [p.name for p in paths] == [
        "azure_conv_example.csv",
        "azure_code_example.csv",
        "mooncake_example.jsonl",
        "burstgpt_example.csv",
    ]
    for p in paths:
        committed = EXAMPLES / p.name
        assert p.read_bytes() == committed.read_bytes(), f"regenerate {committed.name}"
        assert p.stat().st_size < 200_000


def test_written_traces_read_back_exactly(tmp_path):
    paths = generate(tmp_path, seed=9)
    conv = read_trace(paths[0])
    again = synth_trace(AZURE_CONV_2023, 120.0, 9)
    assert len(conv) == len(again)
    assert np.array_equal(conv.input_tokens, again.input_tokens)
    assert np.allclose(conv.t_s, again.t_s, atol=1e-7)
    burst = read_trace(paths[3])
    assert np.array_equal(burst.failed, burst.output_tokens == 0) and burst.failed.any()
    moon = read_trace(paths[2])
    blocks = np.array([len(h) for h in moon.hash_ids])
    assert np.array_equal(blocks, -(-moon.input_tokens // 512))
    # prompts share prefix blocks: fewer distinct first blocks than requests
    assert len({h[0] for h in moon.hash_ids}) < len(moon) / 10


@pytest.mark.parametrize("stats", [AZURE_CONV_2023, AZURE_CODE_2023], ids=["conv", "code"])
def test_long_synthetic_trace_follows_the_published_statistics(stats):
    t = synth_trace(stats, 20_000.0 if stats.cv < 2 else 200_000.0, seed=1)
    for col, p50, p90 in [
        (t.input_tokens, stats.input_p50, stats.input_p90),
        (t.output_tokens, stats.output_p50, stats.output_p90),
    ]:
        assert np.percentile(col, 50) == pytest.approx(p50, rel=0.05)
        assert np.percentile(col, 90) == pytest.approx(p90, rel=0.05)
    assert t.mean_rate() == pytest.approx(stats.rate, rel=0.05 if stats.cv < 2 else 0.25)
    assert t.interarrival_cv() == pytest.approx(stats.cv, rel=0.05 if stats.cv < 2 else 0.25)
