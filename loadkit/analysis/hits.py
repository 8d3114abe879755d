"""The proxy's hit journal joined with the records: faults attributed even when a gateway
dropped or renamed the proxy's tag, and answers a gateway re-ended counted as truncated.

A gateway (LiteLLM, an API manager) between loadkit and a faulted upstream changes what the
client sees: it prefixes or strips `x-loadkit-fault`, and when an upstream stream is cut it
may close the stream to the client with its own `finish_reason: stop`, usage and `[DONE]`,
so a cut answer looks complete. The proxy journals every request it faulted with the
attempt key the client sent (`x-loadkit-attempt`); joining on it:

- a failed attempt without a tag gets the fault that hit it (injected, not organic);
- an attempt recorded `ok` whose own stream a truncating fault cut becomes `truncated`,
  unless another upstream answered it (the gateway retried elsewhere before any content);
- a hit on an attempt that still succeeded otherwise was absorbed by the gateway (it
  retried or failed over): counted, since that is the gateway doing its job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadkit.chaos.kinds import TRUNCATING
from loadkit.results.faults_schema import FaultHit

# Kinds that end an upstream stream before its answer was whole (the fault-kind registry).
TRUNCATING_KINDS = TRUNCATING


@dataclass(frozen=True)
class Attribution:
    hits: int  # rows in the hit journal
    joined: int  # of them, on an attempt in the records
    retagged: int  # failed attempts without a tag that the journal attributed
    truncated: int  # `ok` attempts whose upstream stream was cut: now `truncated`
    absorbed: int  # hit attempts that still succeeded whole (the gateway retried)

    def to_json(self) -> dict[str, int]:
        return {
            "hits": self.hits,
            "joined": self.joined,
            "retagged": self.retagged,
            "truncated": self.truncated,
            "absorbed_by_gateway": self.absorbed,
        }


def attempt_keys(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    rid = np.asarray(cols["request_id"]).astype(str)
    att = np.asarray(cols["attempt"]).astype(np.int64).astype(str)
    return np.char.add(np.char.add(rid, "/"), att)


def attribute(
    cols: Mapping[str, np.ndarray],
    hits: Sequence[FaultHit],
    fault_kinds: Mapping[str, str] | None = None,
    journaled: bool = False,
) -> tuple[dict[str, np.ndarray], Attribution]:
    """New `fault` and `outcome` columns (the others shared) and what the join changed.

    `fault_kinds` (fault id -> kind, from the run's journal) also catches an answer whose
    tag came back (LiteLLM passes it on as `llm_provider-x-loadkit-fault`) but which a
    gateway re-ended: `ok` with the tag of a truncating fault is `truncated`.

    The tag goes out with the answer's headers, before the fault acts; a mid-stream fault
    journals its hit only when it acts (an answer shorter than `after_tokens` passes
    whole). So where the run has a hit journal (`journaled`), the tag alone counts only
    for faults whose hits came without the client's attempt key (a gateway that does not
    forward it); a keyed hit decides for its own attempt.
    """
    out: dict[str, Any] = dict(cols)
    tagged_cut = _tagged_truncations(cols, fault_kinds or {})
    if journaled:
        unkeyed = sorted({h.fault_id for h in hits if not h.attempt})
        tagged_cut &= np.isin(np.asarray(cols["fault"]).astype(str), unkeyed)
    keyed = [h for h in hits if h.attempt]
    if not keyed and not tagged_cut.any():
        return out, Attribution(len(hits), 0, 0, 0, 0)
    by_key: dict[str, FaultHit] = {}
    for h in keyed:
        # a gateway that retries one attempt sends it (and its key) again: the last hit is
        # the one its answer came from, if any came through this proxy
        by_key[h.attempt] = h
    keys = attempt_keys(cols)
    idx = np.flatnonzero(np.isin(keys, np.asarray(list(by_key), dtype=keys.dtype)))
    fault = np.asarray(cols["fault"]).astype(object).copy()
    outcome = np.asarray(cols["outcome"]).astype(object).copy()
    served = np.asarray(cols["served_by"]).astype(str)
    retagged = truncated = absorbed = 0
    for i in idx:
        h = by_key[str(keys[i])]
        elsewhere = bool(h.upstream and served[i] and served[i] != h.upstream)
        if outcome[i] == "ok":
            if h.kind in TRUNCATING_KINDS and not elsewhere:
                outcome[i] = "truncated"
                fault[i] = fault[i] or h.fault_id
                truncated += 1
            else:
                absorbed += 1
        elif not fault[i]:
            fault[i] = h.fault_id
            retagged += 1
    more = tagged_cut & (outcome == "ok")
    outcome[more] = "truncated"
    truncated += int(more.sum())
    out["fault"] = fault
    out["outcome"] = outcome
    return out, Attribution(len(hits), int(idx.size), retagged, truncated, absorbed)


def _tagged_truncations(
    cols: Mapping[str, np.ndarray], fault_kinds: Mapping[str, str]
) -> np.ndarray:
    """`ok` attempts carrying the tag of a fault whose kind cuts a stream short."""
    cutting = [fid for fid, kind in fault_kinds.items() if kind in TRUNCATING_KINDS]
    fault = np.asarray(cols["fault"])
    if not cutting or fault.size == 0:
        return np.zeros(fault.size, dtype=bool)
    return (np.asarray(cols["outcome"]) == "ok") & np.isin(fault.astype(str), cutting)
