"""Planned against served: did the service see the prompt and reply sizes the workload asked for?

Per workload, over successful chat/completions attempts whose usage the service reported
(`tokens_source == server`):

- prompt: the planned content (`planned_prompt_tokens`: system prefix + carried history +
  RAG context + new text, in the target's tokens after calibration) plus the calibrated
  per-request template overhead, against `usage.prompt_tokens`;
- completion: `max_tokens` sent against the completion tokens received (a reply that
  stopped early on its own, finish_reason `stop`, is counted too: the median says how much
  of the ask the service really produced).

Medians are compared; a difference over `WARN_SHARE` (5%) is a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

WARN_SHARE = 0.05


def _kind(endpoint: np.ndarray) -> np.ndarray:
    ep = endpoint.astype(str)
    return np.where(
        np.char.find(ep, "chat/completions") >= 0,
        "chat",
        np.where(np.char.find(ep, "completions") >= 0, "completions", ""),
    )


def _pair(planned: np.ndarray, served: np.ndarray) -> dict[str, Any] | None:
    if planned.size == 0:
        return None
    p = float(np.median(planned))
    s = float(np.median(served))
    diff = (s - p) / p if p > 0 else None
    return {
        "requests": int(planned.size),
        "planned_median": round(p, 1),
        "served_median": round(s, 1),
        "diff_share": None if diff is None else round(diff, 4),
        "warn": bool(diff is not None and abs(diff) > WARN_SHARE),
    }


def planned_vs_served(
    cols: Mapping[str, np.ndarray], overhead_by_kind: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """`{"workloads": {name: {"prompt": ..., "completion": ...}}, "warnings": [...]}`."""
    overhead_by_kind = overhead_by_kind or {}
    kind = _kind(np.asarray(cols["endpoint"]))
    ok = np.asarray(cols["outcome"]).astype(str) == "ok"
    server = np.asarray(cols["tokens_source"]).astype(str) == "server"
    workload = np.asarray(cols["workload"]).astype(str)
    planned = np.asarray(cols["planned_prompt_tokens"], dtype=np.float64)
    prompt = np.asarray(cols["prompt_tokens"], dtype=np.float64)
    max_tokens = np.asarray(cols["max_tokens"], dtype=np.float64)
    completion = np.asarray(cols["completion_tokens"], dtype=np.float64)
    overhead = np.zeros(kind.size)
    for k, b in overhead_by_kind.items():
        overhead[kind == k] = b
    base = ok & server & (kind != "")
    out: dict[str, Any] = {}
    warnings: list[str] = []
    for name in sorted(set(workload[base].tolist())):
        sel = base & (workload == name)
        row: dict[str, Any] = {}
        psel = sel & (planned > 0)
        pr = _pair(planned[psel] + overhead[psel], prompt[psel])
        if pr is not None:
            pr["template_overhead"] = round(float(np.median(overhead[psel])), 2)
            row["prompt"] = pr
        csel = sel & (max_tokens > 0)
        cr = _pair(max_tokens[csel], completion[csel])
        if cr is not None:
            row["completion"] = cr
        if not row:
            continue
        out[name] = row
        for what, label in (("prompt", "prompt tokens"), ("completion", "completion tokens")):
            r = row.get(what)
            if r and r["warn"]:
                warnings.append(
                    f"workload {name}: {label} served (median {r['served_median']:g}) differ "
                    f"from planned ({r['planned_median']:g}) by {r['diff_share']:+.1%}"
                )
    return {"workloads": out, "warnings": warnings}


def prefix_replay(
    cols: Mapping[str, np.ndarray], hash_ids: Sequence[Sequence[int]], prompt_tokens: Sequence[int]
) -> dict[str, Any]:
    """A Mooncake replay: the trace's potential prefix-cache hit share over the rows sent
    (`hash_ids`/`prompt_tokens`: the trace's rows, by row number), next to the cached share
    the service reported."""
    from loadkit.workload.prefixblocks import potential_hit_share

    sid = np.asarray(cols["session_id"]).astype(str)
    kind = np.asarray(cols["endpoint"]).astype(str)
    chat = np.char.find(kind, "completions") >= 0
    rows = sorted({int(s.rsplit("-", 1)[1]) for s in sid[chat] if s.rsplit("-", 1)[-1].isdigit()})
    rows = [i for i in rows if i < len(hash_ids)]
    potential = potential_hit_share(
        [hash_ids[i] for i in rows], [int(prompt_tokens[i]) for i in rows]
    )
    ok = chat & (np.asarray(cols["outcome"]).astype(str) == "ok")
    ok &= np.asarray(cols["tokens_source"]).astype(str) == "server"
    prompt = float(np.sum(np.asarray(cols["prompt_tokens"], dtype=np.float64)[ok]))
    cached = float(np.sum(np.asarray(cols["cached_tokens"], dtype=np.float64)[ok]))
    return {
        "rows": len(rows),
        "potential_hit_share": round(potential, 4),
        "cached_share": round(cached / prompt, 4) if prompt > 0 else None,
    }
