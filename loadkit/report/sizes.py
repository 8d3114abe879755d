"""The report's "Planned against served" section: calibration, prompt and completion sizes
per workload (summary.json's `calibration`, `planned_vs_served`, `prefix_replay`)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any


def _e(v: Any) -> str:
    return html.escape(str(v))


def _share(v: Any) -> str:
    return "" if v is None else f"{v:+.1%}"


def sizes_html(doc: Mapping[str, Any]) -> str:
    """The section, or "" when the run has none of these keys (an older run folder)."""
    pvs = doc.get("planned_vs_served")
    cal = doc.get("calibration")
    prefix = doc.get("prefix_replay")
    if not (pvs or cal or prefix):
        return ""
    parts = ["<h2>Planned against served</h2>"]
    if cal:
        parts.append(f"<p>{_e(cal.get('line', ''))}</p>")
    rows = []
    for name, row in ((pvs or {}).get("workloads") or {}).items():
        for what in ("prompt", "completion"):
            r = row.get(what)
            if not r:
                continue
            flag = "&#9888; over 5%" if r["warn"] else "ok"
            rows.append(
                f"<tr><td>{_e(name)}</td><td>{what} tokens</td>"
                f"<td class='n'>{r['planned_median']:g}</td><td class='n'>{r['served_median']:g}"
                f"</td><td class='n'>{_share(r['diff_share'])}</td><td>{flag}</td>"
                f"<td class='n'>{r['requests']}</td></tr>"
            )
    if rows:
        parts.append(
            "<table><tr><th>workload</th><th>size</th><th>planned (median)</th>"
            "<th>served (median)</th><th>difference</th><th></th><th>requests</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        parts.append(
            "<p class='cap'>Prompt: the planned content (system prefix, history, context, new "
            "text) plus the calibrated template overhead, against the service's "
            "usage.prompt_tokens. Completion: max_tokens sent against completion tokens "
            "received. Successful calls with server-reported usage only.</p>"
        )
    parts += [f'<div class="warn">{_e(w)}</div>' for w in (pvs or {}).get("warnings") or ()]
    if prefix:
        cached = prefix.get("cached_share")
        parts.append(
            f"<p>Mooncake replay of {prefix['rows']} rows: the trace's potential prefix-cache "
            f"hit share {prefix['potential_hit_share']:.1%}; the service reported "
            + ("no usage" if cached is None else f"{cached:.1%} of prompt tokens cached")
            + ".</p>"
        )
    return "".join(parts)
