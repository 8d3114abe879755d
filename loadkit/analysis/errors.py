"""The error messages behind the failure counts: which messages, how often, where.

Outcome counts say that 4% failed; the message says why ("upstream connect error", "context
length exceeded", a gateway's own text). Failed attempts are grouped by outcome, region,
serving upstream (when the records know it) and message; ids and numbers that differ per
request (request ids, hex digests, long digit runs) are masked so one cause is one row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from loadkit.analysis.stats import encode

TOP_N = 10
MAX_MESSAGE = 200
# per-request noise in otherwise equal messages: uuids, hex digests, request ids, long numbers
_NOISE = re.compile(
    r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"
    r"|\b(?:req|chatcmpl|call|run)[-_][0-9A-Za-z_-]{6,}"
    r"|\b(?=[0-9a-f]*\d)[0-9a-f]{12,}\b"
    r"|\d{5,}",
    re.IGNORECASE,
)
_SPACE = re.compile(r"\s+")


def message_key(text: str) -> str:
    """The message with per-request noise masked, one line, at most MAX_MESSAGE characters."""
    one = _SPACE.sub(" ", _NOISE.sub("…", text)).strip()
    return one if len(one) <= MAX_MESSAGE else one[: MAX_MESSAGE - 1] + "…"


def top_errors(cols: Mapping[str, np.ndarray], n: int = TOP_N) -> list[dict[str, Any]]:
    """The `n` most frequent (outcome, region, upstream, message) groups of failed attempts."""
    outcome = np.asarray(cols["outcome"]).astype(str)
    failed = outcome != "ok"
    if not failed.any():
        return []
    total = int(failed.sum())
    error = np.asarray(cols["error"])[failed]
    keys = np.asarray([message_key(str(e)) or "(no message)" for e in error])
    served = cols.get("served_by")
    upstream = np.asarray(served)[failed].astype(str) if served is not None else np.full(total, "")
    parts = (outcome[failed], np.asarray(cols["region"])[failed].astype(str), upstream, keys)
    joined = np.asarray(["\x1f".join(p) for p in zip(*parts, strict=True)])
    codes, names = encode(joined)
    counts = np.bincount(codes, minlength=names.size)
    t = np.asarray(cols["t_sent"], dtype=np.float64)[failed]
    status = np.asarray(cols["status"], dtype=np.int64)[failed]
    rows = []
    for g in np.argsort(-counts, kind="stable")[:n]:
        o, region, up, msg = str(names[g]).split("\x1f")
        sel = codes == g
        statuses = sorted({int(s) for s in status[sel] if s})
        rows.append(
            {
                "outcome": o,
                "region": region,
                "upstream": up,
                "message": msg,
                "attempts": int(counts[g]),
                "share_of_failed": round(float(counts[g]) / total, 6),
                "statuses": statuses,
                "first_s": round(float(np.min(t[sel])) / 1000.0, 3),
                "last_s": round(float(np.max(t[sel])) / 1000.0, 3),
            }
        )
    return rows
