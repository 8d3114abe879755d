"""Traffic and cost per provider API and per endpoint: where a mixed fleet's calls went.

One row per (api, endpoint) the attempts spoke to; counts are attempts (one HTTP exchange
each, `requests.csv` rows), since a failed-over request spans several providers; an
open-loop arrival that was never sent (`not_sent`) reached none and is in no row. Cost is
each attempt's own, at its endpoint's price (cache reads and writes included).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

TARGET = "target"  # how the scenario's target (no endpoint name) is shown


def _s(cols: Mapping[str, np.ndarray], name: str, n: int, default: str) -> np.ndarray:
    v = cols.get(name)
    return np.full(n, default, dtype=object) if v is None else np.asarray(v).astype(str)


def _num(cols: Mapping[str, np.ndarray], name: str, n: int, default: float) -> np.ndarray:
    v = cols.get(name)
    return np.full(n, default) if v is None else np.asarray(v, dtype=np.float64)


def by_provider(cols: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """Rows per (api, endpoint), most attempts first."""
    outcome = np.asarray(cols["outcome"]).astype(str)
    n = outcome.size
    api = _s(cols, "api", n, "openai")
    name = _s(cols, "endpoint_name", n, "")
    name = np.where(name == "", TARGET, name)
    cost = _num(cols, "cost_usd", n, np.nan)
    ttft = _num(cols, "ttft_ms", n, np.nan)
    write = _num(cols, "cache_write_tokens", n, 0.0)
    cached = _num(cols, "cached_tokens", n, 0.0)
    rows: list[dict[str, Any]] = []
    sent = outcome != "not_sent"  # an open-loop arrival never sent reached no provider
    pairs = sorted({(a, e) for a, e in zip(api[sent].tolist(), name[sent].tolist(), strict=True)})
    for a, e in pairs:
        sel = (api == a) & (name == e) & sent
        ok = sel & (outcome == "ok")
        failed = {
            str(k): int(v)
            for k, v in zip(*np.unique(outcome[sel & ~ok], return_counts=True), strict=True)
        }
        priced = bool(np.isfinite(cost[sel]).any())
        spend = float(np.nan_to_num(cost[sel], nan=0.0).sum())
        t = ttft[ok]
        t = t[np.isfinite(t)]
        rows.append(
            {
                "api": a,
                "endpoint": e,
                "attempts": int(sel.sum()),
                "ok": int(ok.sum()),
                "failed": failed,
                "cost_usd": round(spend, 8) if priced else None,
                "cost_usd_per_ok": round(spend / int(ok.sum()), 10)
                if priced and ok.any()
                else None,
                "cached_tokens": int(cached[sel].sum()),
                "cache_write_tokens": int(write[sel].sum()),
                "ttft_p50_ms": round(float(np.percentile(t, 50)), 3) if t.size else None,
                "ttft_p95_ms": round(float(np.percentile(t, 95)), 3) if t.size else None,
            }
        )
    rows.sort(key=lambda r: -r["attempts"])
    return rows


def worth_showing(rows: list[dict[str, Any]]) -> bool:
    """A table of one row for plain OpenAI traffic says nothing the summary does not."""
    return len(rows) > 1 or any(r["api"] != "openai" for r in rows)


def provider_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The console's table of traffic and cost per API and endpoint."""
    if not worth_showing(rows):
        return []
    out = [
        f"{'per provider':<28}{'attempts':>9}{'ok':>7}{'cost USD':>12}{'per ok':>12}"
        f"{'p95 TTFT':>10}  failed"
    ]
    for r in rows:
        cost = "-" if r["cost_usd"] is None else f"{r['cost_usd']:.6f}"
        per = "-" if r["cost_usd_per_ok"] is None else f"{r['cost_usd_per_ok']:.6f}"
        p95 = "-" if r["ttft_p95_ms"] is None else f"{r['ttft_p95_ms']:.0f}"
        failed = ", ".join(f"{k} {v}" for k, v in sorted(r["failed"].items())) or "none"
        label = f"{r['api']} {r['endpoint']}"
        out.append(
            f"{label:<28}{r['attempts']:>9}{r['ok']:>7}{cost:>12}{per:>12}{p95:>10}  {failed}"
        )
    return out
