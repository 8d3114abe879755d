"""Generate the project's small example traces (Azure, Mooncake and BurstGPT formats).

The examples follow statistics measured on the public Azure LLM inference traces of 2023
(Azure/AzurePublicDataset; Splitwise, ISCA'24): token counts log-normal through the published
p50 and p90, arrivals a gamma renewal process with the published inter-arrival CV. They are
synthetic: no row of a real trace is copied.

    python -m loadkit.workload.tracegen --out scenarios/traces
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loadkit.workload.distributions import LogNormal, sample_counts
from loadkit.workload.rates import RateCurve, arrival_times
from loadkit.workload.traces import Trace

AZURE_EPOCH = np.datetime64("2023-11-16T18:00:00", "ns")
MOONCAKE_BLOCK_TOKENS = 512  # Mooncake hashes prompts in blocks of 512 tokens


@dataclass(frozen=True)
class TraceStats:
    """What a synthetic trace follows: rate, gap CV and token p50/p90."""

    rate: float
    cv: float
    input_p50: float
    input_p90: float
    output_p50: float
    output_p90: float


# Azure LLM inference traces 2023, measured with numpy on the published CSVs.
AZURE_CONV_2023 = TraceStats(5.53, 1.09, 1020, 2735, 129, 424)
AZURE_CODE_2023 = TraceStats(2.57, 13.2, 1469, 5188, 13, 55)


def synth_trace(stats: TraceStats, duration_s: float, seed: int) -> Trace:
    """A trace with `stats`, times rounded to 100 ns (the Azure format's resolution)."""
    rng = np.random.default_rng(seed)
    process = "poisson" if abs(stats.cv - 1.0) < 1e-9 else "gamma"
    t = arrival_times(RateCurve.constant(stats.rate), duration_s, process, stats.cv, rng)
    t = np.round(t - t[0], 7)
    n = t.size
    inp = sample_counts(LogNormal(stats.input_p50, stats.input_p90), rng, n, low=1, high=32768)
    out = sample_counts(LogNormal(stats.output_p50, stats.output_p90), rng, n, low=1, high=8192)
    return Trace(t_s=t, input_tokens=inp, output_tokens=out, failed=np.zeros(n, dtype=bool))


def with_prefix_blocks(trace: Trace, seed: int, n_system: int = 4) -> Trace:
    """Mooncake-style `hash_ids`: requests share a system prompt's blocks (one of `n_system`),
    and a follow-up in a conversation (one in three) repeats its predecessor's blocks first."""
    rng = np.random.default_rng(seed)
    system_blocks = rng.integers(1, 4, n_system)  # 1-3 blocks of shared system prompt
    next_id = 0
    systems = []
    for b in system_blocks:
        systems.append(tuple(range(next_id, next_id + int(b))))
        next_id += int(b)
    which = rng.integers(0, n_system, len(trace))
    follow = rng.uniform(size=len(trace)) < 1 / 3
    rows: list[tuple[int, ...]] = []
    inp = trace.input_tokens.copy()
    for i in range(len(trace)):
        need = -(-int(inp[i]) // MOONCAKE_BLOCK_TOKENS)
        extends_previous = follow[i] and rows and len(rows[-1]) < need
        head = rows[-1] if extends_previous else systems[which[i]][:need]
        fresh = need - len(head)
        rows.append(head + tuple(range(next_id, next_id + fresh)))
        next_id += fresh
    return Trace(
        t_s=trace.t_s,
        input_tokens=inp,
        output_tokens=trace.output_tokens,
        failed=trace.failed,
        hash_ids=tuple(rows),
        source=trace.source,
    )


def with_burstgpt_fields(trace: Trace, seed: int, fail_rate: float = 0.02) -> Trace:
    """Models and failures in BurstGPT's style: failed rows report 0 response tokens."""
    rng = np.random.default_rng(seed)
    model = np.where(rng.uniform(size=len(trace)) < 0.75, "ChatGPT", "GPT-4").astype(object)
    failed = rng.uniform(size=len(trace)) < fail_rate
    out = np.where(failed, 0, trace.output_tokens)
    return Trace(
        t_s=trace.t_s,
        input_tokens=trace.input_tokens,
        output_tokens=out,
        failed=failed,
        model=model,
        source=trace.source,
    )


def write_azure(trace: Trace, path: Path) -> None:
    stamps = AZURE_EPOCH + np.round(trace.t_s * 1e9).astype("timedelta64[ns]")
    text = np.datetime_as_string(stamps, unit="ns")
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    lines += [
        f"{s[:10]} {s[11:-2]},{i},{o}"
        for s, i, o in zip(text, trace.input_tokens, trace.output_tokens, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_mooncake(trace: Trace, path: Path) -> None:
    if trace.hash_ids is None:
        raise ValueError("a Mooncake trace needs hash_ids")
    ms = np.round(trace.t_s * 1000.0).astype(np.int64)
    lines = [
        json.dumps(
            {
                "timestamp": int(t),
                "input_length": int(i),
                "output_length": int(o),
                "hash_ids": list(h),
            }
        )
        for t, i, o, h in zip(
            ms, trace.input_tokens, trace.output_tokens, trace.hash_ids, strict=True
        )
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_burstgpt(trace: Trace, path: Path) -> None:
    model = trace.model if trace.model is not None else np.full(len(trace), "ChatGPT", object)
    lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    lines += [
        f"{t:.3f},{m},{i},{o},{i + o},Conversation log"
        for t, m, i, o in zip(
            trace.t_s, model, trace.input_tokens, trace.output_tokens, strict=True
        )
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate(out_dir: Path, seed: int = 2023) -> list[Path]:
    """Write the example traces into `out_dir`; the same seed writes the same bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    conv = synth_trace(AZURE_CONV_2023, 120.0, seed)
    code = synth_trace(AZURE_CODE_2023, 300.0, seed + 1)
    mooncake = with_prefix_blocks(synth_trace(AZURE_CONV_2023, 60.0, seed + 2), seed + 3)
    burst = with_burstgpt_fields(synth_trace(AZURE_CONV_2023, 90.0, seed + 4), seed + 5)
    files = [
        (out_dir / "azure_conv_example.csv", write_azure, conv),
        (out_dir / "azure_code_example.csv", write_azure, code),
        (out_dir / "mooncake_example.jsonl", write_mooncake, mooncake),
        (out_dir / "burstgpt_example.csv", write_burstgpt, burst),
    ]
    for path, writer, trace in files:
        writer(trace, path)
    return [p for p, _, _ in files]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadkit.workload.tracegen", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=Path("scenarios/traces"))
    parser.add_argument("--seed", type=int, default=2023)
    args = parser.parse_args(argv)
    for p in generate(args.out, args.seed):
        print(f"{p}  {p.stat().st_size} bytes")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
