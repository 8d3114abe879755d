"""Live Locust statistics for LLM calls: the usual request rows plus TTFT and ITL rows.

Why not fire `events.request` for TTFT/ITL with their own request_type: Locust's runner
listens to that event with `RequestStats.log_request`, which logs into the named entry
AND into `RequestStats.total` (the "Aggregated" row, the source of the total RPS, the
failure ratio and `--exit-code-on-error`). A TTFT sample fired as a request would count
as a second request. Instead the timing samples are logged straight into their own
`StatsEntry` (`environment.stats.get(name, "TTFT").log(ms, 0)`), bypassing `total`:

- they show up as rows of type `TTFT` / `ITL` in the console table, the web UI, the
  `--csv` files and the HTML report, with the usual percentiles;
- the Aggregated row, total RPS and failure ratio only count real HTTP attempts;
- in distributed mode each worker's `report_to_master` serialises every entry and the
  total separately (`serialize_stats` / `stats.total.get_stripped_report`), and the master
  merges entries and total separately, so the same holds there.

The TTFT row gets one sample per attempt that produced a first token; the ITL row gets
each attempt's mean inter-token gap (one sample per attempt, not per token, so a
1,000-token answer does not cost 1,000 log calls on the hot path; per-gap distributions
are in requests.csv as mean/p99/max per attempt).
"""

from __future__ import annotations

from typing import Any

TTFT_TYPE = "TTFT"
ITL_TYPE = "ITL"


class LLMRequestError(Exception):
    """What Locust's failure table shows for a failed attempt (kept low in cardinality)."""


def fire_request(
    environment: Any,
    name: str,
    response_time_ms: float,
    response_length: int,
    error: str | None,
    context: dict[str, Any] | None = None,
) -> None:
    """One attempt as a normal Locust request row (counts in RPS and Aggregated)."""
    environment.events.request.fire(
        request_type="POST",
        name=name,
        response_time=response_time_ms,
        response_length=response_length,
        exception=LLMRequestError(error) if error else None,
        context=context or {},
    )


def log_timing(environment: Any, kind: str, name: str, value_ms: float) -> None:
    """A TTFT or ITL sample in its own row, leaving Aggregated untouched (see module doc)."""
    if value_ms != value_ms:  # NaN: not measured
        return
    environment.stats.get(name, kind).log(value_ms, 0)
