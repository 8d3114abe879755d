"""What the service served against what was asked: early stops and prompt-cache hits.

- Early stops: among successful attempts that sent a `max_tokens` and got a
  `finish_reason`, the share that ended for another reason than `length` (end of text,
  a stop sequence, a tool call, a content filter). Such an answer is shorter than the
  scenario's output length, so output-length figures and everything decode-bound are
  flattered. Attempts without a finish_reason are counted apart (`unknown`).
- Prompt-cache hits: cached prompt tokens over prompt tokens of successful attempts, as
  the service reported them (`usage.prompt_tokens_details.cached_tokens`). A rerun served
  from the server's cache looks faster than a cold one (see `prompt_cache:` in
  docs/scenarios.md).

Both overall and per workload; numpy only, records in, JSON-ready dicts out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

EARLY_STOP_WARN = 0.05  # the console warns above this share


def _early(
    finish: np.ndarray, asked: np.ndarray, known: np.ndarray, m: np.ndarray
) -> dict[str, Any]:
    answers = int((m & asked).sum())
    n_known = int((m & asked & known).sum())
    early = int((m & asked & known & (finish != "length")).sum())
    return {
        "share": round(early / n_known, 4) if n_known else None,
        "early": early,
        "answers": n_known,
        "unknown": answers - n_known,
    }


def _cache(prompt: np.ndarray, cached: np.ndarray, m: np.ndarray) -> dict[str, Any]:
    p = float(prompt[m].sum())
    c = float(cached[m].sum())
    return {
        "share": round(c / p, 4) if p > 0 else None,
        "cached_tokens": int(c),
        "prompt_tokens": int(p),
    }


def served(cols: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """`early_stops` and `prompt_cache_hits` for summary.json (overall and `by_workload`)."""
    outcome = np.asarray(cols["outcome"]).astype(str)
    ok = outcome == "ok"
    n = outcome.size

    def col(name: str) -> np.ndarray | None:  # columns older record sets lack: None
        try:
            return np.asarray(cols[name])
        except KeyError:
            return None

    def num(name: str) -> np.ndarray:
        c = col(name)
        return np.zeros(n) if c is None else np.nan_to_num(c.astype(np.float64), nan=0.0)

    def text(name: str) -> np.ndarray:
        c = col(name)
        return np.full(n, "") if c is None else c.astype(str)

    workload = text("workload")
    finish = text("finish_reason")
    asked = num("max_tokens") > 0
    known = finish != ""
    prompt = num("prompt_tokens")
    cached = num("cached_tokens")
    names = sorted(set(workload[ok].tolist()))
    early = _early(finish, asked, known, ok)
    early["by_workload"] = {w: _early(finish, asked, known, ok & (workload == w)) for w in names}
    hits = _cache(prompt, cached, ok)
    hits["by_workload"] = {w: _cache(prompt, cached, ok & (workload == w)) for w in names}
    return {"early_stops": early, "prompt_cache_hits": hits}


def served_lines(summary: Mapping[str, Any]) -> list[str]:
    """Console lines: a warning per workload whose answers often ended before max_tokens,
    and the share of prompt tokens the service served from its cache."""
    lines: list[str] = []
    early = summary.get("early_stops") or {}
    for name, e in sorted((early.get("by_workload") or {}).items()):
        share = e.get("share")
        if share is not None and share > EARLY_STOP_WARN:
            lines.append(
                f"warning: {100 * share:.0f}% of workload {name}'s answers ({e['early']} of "
                f"{e['answers']}) ended before max_tokens (finish_reason not 'length'): output "
                "lengths are the model's, not the scenario's; to force them set extra_body: "
                "{ignore_eos: true} (vLLM, llama.cpp) or min_tokens (vLLM)"
            )
    hits = summary.get("prompt_cache_hits") or {}
    if hits.get("share"):
        salt = summary.get("prompt_salt")
        if salt:
            how = f"; prompts salted ({salt}): hits come from within this run"
        elif summary.get("prompt_cache") == "warm":
            how = "; prompt_cache: warm: hits may come from earlier runs"
        else:
            how = ""
        lines.append(
            f"prompt tokens served from the service's cache: {100 * hits['share']:.1f}% "
            f"({hits['cached_tokens']:,} of {hits['prompt_tokens']:,}{how})"
        )
    return lines
