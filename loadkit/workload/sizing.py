"""Prompt sizes in the target's own tokens: one map from target tokens to synthesis units.

`loadkit.workload.prompts` writes text in *synthesis units* of 4 characters (the project's
token estimate). A real tokenizer counts that text differently: llama-server's BPE counts
about 0.9 tokens per unit on the word pool, cl100k about 0.8. `loadkit run` measures the
target's tokens per unit before the load (`loadkit.orchestration.calibrate`) and every
prompt is then
synthesised with `Sizing.units(n)` units, so the service counts `n` tokens of content.

Content is what the workload asks for: system prefix, carried history, RAG context and the
new user text. A chat template adds its own tokens on top (`overhead_tokens`, fitted per
request by the calibration); the planned-vs-served comparison adds it back before comparing
with the service's `usage.prompt_tokens`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sizing:
    """Target tokens per synthesis unit (`scale`) and per-request template overhead."""

    scale: float = 1.0  # target tokens per 4-character synthesis unit
    overhead_tokens: float = 0.0  # tokens the service adds per request (chat template)
    source: str = "estimate"  # "server" (usage), "tokenizer" (local file) or "estimate"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be > 0, got {self.scale!r}")

    def units(self, n_tokens: int) -> int:
        """Synthesis units for `n_tokens` target tokens (at least 1 for a non-empty ask)."""
        n = int(n_tokens)
        if n <= 0:
            return 0
        return max(1, round(n / self.scale))

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "overhead_tokens": self.overhead_tokens,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> Sizing:
        """From `to_dict` output (a run config's `extra["sizing"]`); the estimate if absent."""
        if not d:
            return cls()
        return cls(
            scale=float(d.get("scale", 1.0)),
            overhead_tokens=float(d.get("overhead_tokens", 0.0)),
            source=str(d.get("source", "estimate")),
        )


ESTIMATE = Sizing()
