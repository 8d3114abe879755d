"""Benchmark: workload sampling against the plain-Python way of doing the same, in one run.

Three measurements, each a ratio against a baseline timed side by side (absolute times on a
shared machine are noise):

- prompt synthesis: `text_of_tokens(4000)` (a slice of a seeded word pool) against drawing
  4,000 words with numpy and joining them (the usual vectorised way), and against a per-word
  Python loop of random choices;
- trace reading: `read_azure` on the Azure conv 2023 trace (19,366 rows; skipped when
  ../shared/data is absent, else a synthetic file of the same size) against the csv module
  with `datetime.strptime` per row;
- arrivals: `arrival_times` for ~100,000 Poisson arrivals on a ramp (time rescaling, numpy)
  against a per-arrival Python loop of thinning (Lewis-Shedler).

    python -m bench.bench_workload [--quick] [--out bench/out/bench_workload.json]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from loadkit.workload.prompts import _WORDS, text_of_tokens
from loadkit.workload.rates import RateCurve, arrival_times
from loadkit.workload.tracegen import AZURE_CONV_2023, synth_trace, write_azure
from loadkit.workload.traces import read_azure

REPO = Path(__file__).resolve().parents[1]
SHARED_CONV = REPO.parent / "shared" / "data" / "traces" / "AzureLLMInferenceTrace_conv_2023.csv"
DEFAULT_OUT = REPO / "bench" / "out" / "bench_workload.json"


def _time(fn: Callable[[], object], repeat: int, number: int) -> float:
    """Median seconds per call over `repeat` batches of `number` calls."""
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - t0) / number)
    return statistics.median(runs)


def bench_prompts(repeat: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    words = np.array(_WORDS, dtype=object)
    py = random.Random(0)
    text_of_tokens(1, rng)  # build the pool once, as a run does

    def numpy_join() -> str:
        return " ".join(words[rng.integers(0, words.size, 4000)].tolist())

    def python_loop() -> str:
        out = []
        for _ in range(4000):
            out.append(py.choice(_WORDS))
        return " ".join(out)

    ours = _time(lambda: text_of_tokens(4000, rng), repeat, 200)
    base_np = _time(numpy_join, repeat, 20)
    base_py = _time(python_loop, repeat, 20)
    return {
        "loadkit_us": ours * 1e6,
        "numpy_join_us": base_np * 1e6,
        "python_loop_us": base_py * 1e6,
        "speedup_vs_numpy_join": base_np / ours,
        "speedup_vs_python_loop": base_py / ours,
    }


def _reference_read(path: Path) -> int:
    n = 0
    with path.open(newline="") as f:
        rows = csv.reader(f)
        next(rows)
        t0 = None
        for stamp, c, g in rows:
            t = dt.datetime.strptime(stamp[:26], "%Y-%m-%d %H:%M:%S.%f")
            t0 = t0 or t
            _ = ((t - t0).total_seconds(), int(c), int(g))
            n += 1
    return n


def bench_trace(repeat: int, workdir: Path) -> dict[str, float | str]:
    path = SHARED_CONV
    source = "Azure conv 2023"
    if not path.exists():
        path = workdir / "conv.csv"
        write_azure(synth_trace(AZURE_CONV_2023, 19_366 / AZURE_CONV_2023.rate, 1), path)
        source = "synthetic, Azure conv 2023 size"
    ours = _time(lambda: read_azure(path), repeat, 3)
    base = _time(lambda: _reference_read(path), repeat, 1)
    return {
        "source": source,
        "rows": len(read_azure(path)),
        "loadkit_ms": ours * 1e3,
        "csv_strptime_ms": base * 1e3,
        "speedup": base / ours,
    }


def _thinning(curve: RateCurve, t_end: float, seed: int) -> list[float]:
    """Lewis-Shedler thinning, one candidate at a time (the textbook loop)."""
    rng = random.Random(seed)
    lam_max = max(curve.rates)
    t, out = 0.0, []
    while True:
        t += rng.expovariate(lam_max)
        if t >= t_end:
            return out
        if rng.random() * lam_max <= curve.rate(t):
            out.append(t)


def bench_arrivals(repeat: int) -> dict[str, float]:
    curve = RateCurve.from_phases([(500.0, 100.0, 300.0)])
    ours = _time(
        lambda: arrival_times(curve, 500.0, "poisson", 1.0, np.random.default_rng(1)), repeat, 5
    )
    base = _time(lambda: _thinning(curve, 500.0, 1), max(1, repeat // 2), 1)
    n = arrival_times(curve, 500.0, "poisson", 1.0, np.random.default_rng(1)).size
    return {"arrivals": n, "loadkit_ms": ours * 1e3, "thinning_loop_ms": base * 1e3,
            "speedup": base / ours}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    repeat = 3 if args.quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        doc = {
            "prompts_4000_tokens": bench_prompts(repeat),
            "trace_read": bench_trace(repeat, Path(tmp)),
            "arrivals": bench_arrivals(repeat),
        }
    p, t, a = doc["prompts_4000_tokens"], doc["trace_read"], doc["arrivals"]
    rows = [
        ("4,000-token prompt", f"{p['loadkit_us']:.1f} us", "numpy word join",
         f"{p['numpy_join_us']:.1f} us", p["speedup_vs_numpy_join"]),
        ("", "", "per-word Python loop", f"{p['python_loop_us']:.1f} us",
         p["speedup_vs_python_loop"]),
        (f"read {t['rows']} trace rows", f"{t['loadkit_ms']:.1f} ms", "csv + strptime",
         f"{t['csv_strptime_ms']:.1f} ms", t["speedup"]),
        (f"{a['arrivals']} ramp arrivals", f"{a['loadkit_ms']:.1f} ms", "thinning loop",
         f"{a['thinning_loop_ms']:.1f} ms", a["speedup"]),
    ]  # fmt: skip
    print(f"{'what':26} {'loadkit':>10}  {'baseline':22} {'time':>10}  {'speedup':>8}")
    for what, ours, base, base_t, ratio in rows:
        print(f"{what:26} {ours:>10}  {base:22} {base_t:>10}  {ratio:7.1f}x")
    print(f"trace source: {t['source']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
