"""Which model answered: the scenario's model against the `model` the service reported.

A gateway or a self-hosted server may answer with another model than the one asked for
(llama.cpp's server answers any name with its own); the cost curve then prices one model's
tokens at another's rates. Dated snapshots (`gpt-4o-mini` answered as
`gpt-4o-mini-2024-07-18`) and provider prefixes (`openai/gpt-4o-mini`) are the same model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def same_model(asked: str, answered: str) -> bool:
    a = asked.rsplit("/", 1)[-1].lower()
    b = answered.rsplit("/", 1)[-1].lower()
    return a == b or b.startswith(a + "-") or a.startswith(b + "-")


def model_mismatches(cols: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """(requested, answered, attempts) for each pair where the service named another model."""
    asked = np.asarray(cols["model"]).astype(str)
    answered = np.asarray(cols["response_model"]).astype(str)
    known = answered != ""
    if not known.any():
        return []
    a_names, a_codes = np.unique(asked[known], return_inverse=True)
    b_names, b_codes = np.unique(answered[known], return_inverse=True)
    pairs, counts = np.unique(a_codes * b_names.size + b_codes, return_counts=True)
    out = []
    for pair, n in zip(pairs.tolist(), counts.tolist(), strict=True):
        a, b = str(a_names[pair // b_names.size]), str(b_names[pair % b_names.size])
        if not same_model(a, b):
            out.append({"requested": a, "answered": b, "attempts": int(n)})
    return out


def mismatch_lines(mismatches: list[dict[str, Any]]) -> list[str]:
    """One warning per requested model, for the console and the report."""
    by_asked: dict[str, list[str]] = {}
    for m in mismatches:
        by_asked.setdefault(m["requested"], []).append(
            f"{m['answered']} in {m['attempts']:,} attempts"
        )
    return [
        f"warning: the scenario asks for model {asked} but the service answered as "
        f"{', '.join(answers)}: prices, cache billing and comparisons assume {asked}"
        for asked, answers in by_asked.items()
    ]
