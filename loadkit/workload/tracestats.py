"""What a trace looks like: the figures people compare traces by (`loadkit trace FILE`).

Rate, inter-arrival CV, token percentiles and failures, so a scenario author can check a
trace against published figures before replaying it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from loadkit.workload.traces import Trace

QUANTILES = (50, 90, 99)


def describe(trace: Trace) -> dict[str, Any]:
    """Summary figures; token percentiles over rows that succeeded in the original system."""
    ok = trace.ok()
    d: dict[str, Any] = {
        "source": trace.source,
        "requests": len(trace),
        "failed": int(trace.failed.sum()),
        "duration_s": trace.duration_s,
        "rate_per_s": trace.mean_rate(),
        "interarrival_cv": trace.interarrival_cv() if len(trace) > 2 else None,
    }
    for col in ("input_tokens", "output_tokens"):
        vals = getattr(ok, col)
        d[col] = (
            {f"p{q}": float(np.percentile(vals, q)) for q in QUANTILES}
            | {"mean": float(vals.mean())}
            if vals.size
            else None
        )
    if trace.model is not None:
        names, counts = np.unique(trace.model.astype(str), return_counts=True)
        d["models"] = {str(n): int(c) for n, c in zip(names, counts, strict=True)}
    if trace.hash_ids is not None:
        blocks = sum(len(h) for h in trace.hash_ids)
        distinct = len({b for h in trace.hash_ids for b in h})
        d["prefix_blocks"] = {"total": blocks, "distinct": distinct}
    return d


def render(d: dict[str, Any]) -> str:
    lines = [
        f"{d['source']}",
        f"  requests        {d['requests']}  ({d['failed']} failed)",
        f"  duration        {d['duration_s']:.1f} s",
        f"  rate            {d['rate_per_s']:.2f} req/s",
    ]
    if d["interarrival_cv"] is not None:
        lines.append(f"  inter-arrival   CV {d['interarrival_cv']:.2f} (Poisson: 1)")
    for col, label in (("input_tokens", "input tokens"), ("output_tokens", "output tokens")):
        q = d[col]
        if q is not None:
            ps = " / ".join(f"{q[f'p{p}']:g}" for p in QUANTILES)
            lines.append(f"  {label:15} p50/p90/p99 {ps}, mean {q['mean']:.0f}")
    if "models" in d:
        lines.append("  models          " + ", ".join(f"{k} {v}" for k, v in d["models"].items()))
    if "prefix_blocks" in d:
        pb = d["prefix_blocks"]
        share = 1 - pb["distinct"] / pb["total"] if pb["total"] else 0.0
        lines.append(
            f"  prefix blocks   {pb['total']} ({pb['distinct']} distinct: "
            f"{share:.0%} could hit a prefix cache)"
        )
    return "\n".join(lines)
