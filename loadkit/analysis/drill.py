"""The drill's own summary (`summary.json["chaos"]`): per journaled fault window the attempts
exposed to it, and the steady-state check before the first fault and after the last.

Exposure is `analysis.faults.exposed`, the same set the summary's `faults[]` counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from loadkit.analysis.faults import exposed, from_journal
from loadkit.results.faults_schema import FaultEvent
from loadkit.results.run_folder import RunFolder


def drill_summary(
    cols: Mapping[str, np.ndarray], events: list[FaultEvent], slo_error_rate: float | None
) -> dict[str, Any]:
    """Per fault window: attempts in flight during it, failures, how many the proxy tagged;
    and the steady-state check: error rate before the first fault and after the last one."""
    t = np.asarray(cols["t_sent"], dtype=np.float64)
    e2e = np.asarray(cols["e2e_ms"], dtype=np.float64)
    failed = np.asarray(cols["outcome"]) != "ok"
    tags = np.asarray(cols["fault"])
    region = np.asarray(cols["region"])
    rid = np.asarray(cols["request_id"])
    windows = []
    for w in from_journal(events):
        inside = exposed(t, e2e, region, w)
        windows.append(
            {
                "fault_id": w.fault_id,
                "kind": w.kind,
                "region": w.region or None,
                "upstream": w.upstream or None,
                "start_ms": round(w.start_ms, 1),
                "end_ms": None if math.isinf(w.end_ms) else round(w.end_ms, 1),
                "attempts": int(inside.sum()),
                "requests": int(np.unique(rid[inside]).size),
                "failed": int((failed & inside).sum()),
                # tagged: the proxy's header reached the record; connection-level faults
                # (refuse, reset, hang, region_outage) have no response to carry it
                "tagged": int(((tags == w.fault_id) & inside).sum()),
            }
        )
    spans = [(w["start_ms"], w["end_ms"]) for w in windows]
    out: dict[str, Any] = {"journal": RunFolder.FAULTS_CSV, "windows": windows}
    e2e0 = np.nan_to_num(e2e, nan=0.0)
    if spans:
        first = min(s for s, _ in spans)
        ends = [e for _, e in spans]
        last = None if None in ends else max(e for e in ends if e is not None)

        def rate(mask: np.ndarray) -> dict[str, Any]:
            n = int(mask.sum())
            r = float((failed & mask).sum() / n) if n else None
            ok = None if r is None or slo_error_rate is None else r <= slo_error_rate
            return {"attempts": n, "error_rate": r, "within_slo": ok}

        out["steady_state"] = {
            "slo_error_rate": slo_error_rate,
            "before": rate(t + e2e0 < first),  # attempts over before any fault began
            "after": rate(t >= last) if last is not None else None,
        }
    aborts = [e for e in events if e.event == "abort"]
    out["abort"] = aborts[0].params.get("reason") if aborts else None
    return out
