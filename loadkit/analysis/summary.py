"""The end-of-run summary: latency percentiles, throughput, errors by outcome, cost, SLOs.

Reads record columns (numpy arrays keyed by `loadkit.results.schema.COLUMNS`) and nothing
else. Definitions (README "Metric definitions"):

- TTFT, E2E: per attempt that ended `ok`, from the send time. For open-loop load the
  `*_from_intended` figures add the schedule lag (`t_sent - t_intended`), the latency a user
  arriving at the intended time felt (no coordinated omission).
- ITL: records keep each request's gap mean, p99 and max, not every gap; the summary's
  ITL percentiles are over the per-request mean gaps, and `itl_p99_max_ms` is the worst
  per-request p99.
- A logical request (one `request_id`) succeeded when its last attempt did; its user-visible
  latency spans from its first attempt's intended (else sent) time to the end of its last.
- Requests/s and tokens/s divide by the run's duration. Cost adds every attempt's cost;
  cost per request divides by logical requests, per successful request by successful ones.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from loadkit.analysis.models import mismatch_lines, model_mismatches
from loadkit.analysis.providers import by_provider, provider_lines
from loadkit.analysis.requests import logical
from loadkit.analysis.served import served

PERCENTILES = (50, 95, 99)


def _pcts(values: np.ndarray) -> dict[str, float | None]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return {f"p{p}": None for p in PERCENTILES} | {"mean": None, "n": 0}
    qs = np.percentile(v, PERCENTILES)
    out: dict[str, float | None] = {
        f"p{p}": round(float(q), 3) for p, q in zip(PERCENTILES, qs, strict=True)
    }
    out["mean"] = round(float(v.mean()), 3)
    out["n"] = int(v.size)
    return out


def _f(cols: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(cols[name], dtype=np.float64)


def _s(cols: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return np.asarray(cols[name]).astype(str)


def active_span_s(cols: Mapping[str, np.ndarray]) -> float:
    """Seconds from the first send (or intended send) to the end of the last attempt."""
    t_sent = _f(cols, "t_sent")
    if t_sent.size == 0:
        return 0.0
    t_int = _f(cols, "t_intended")
    start = np.where(np.isfinite(t_int), np.fmin(t_int, t_sent), t_sent)
    end = t_sent + np.nan_to_num(_f(cols, "e2e_ms"), nan=0.0)
    return float(np.nanmax(end) - np.nanmin(start)) / 1000.0


def summarize(
    cols: Mapping[str, np.ndarray],
    duration_s: float | None = None,
    slo: Any | None = None,
) -> dict[str, Any]:
    """The summary as a JSON-ready dict; `slo` is the scenario's Slo (or None).

    Rates divide by `duration_s`, by default the records' active span (first send to last
    byte), so start-up and shutdown of the load generator do not dilute them.
    """
    if duration_s is None:
        duration_s = active_span_s(cols)
    outcome = _s(cols, "outcome")
    n_att = int(outcome.size)
    ok = outcome == "ok"
    ttft = _f(cols, "ttft_ms")
    e2e = _f(cols, "e2e_ms")
    lag = _f(cols, "sched_lag_ms")
    lag0 = np.nan_to_num(lag, nan=0.0)
    lr = logical(cols)
    n_req = lr.n
    n_ok = int(lr.ok.sum())
    comp = np.asarray(cols["completion_tokens"], dtype=np.float64)
    prompt = np.asarray(cols["prompt_tokens"], dtype=np.float64)
    raw_cost = _f(cols, "cost_usd")
    priced = bool(np.isfinite(raw_cost).any())  # no pricing: every cost cell is empty
    total_cost = float(np.nan_to_num(raw_cost, nan=0.0).sum())
    dur = max(float(duration_s), 1e-9)
    by_outcome = {
        str(k): int(v) for k, v in zip(*np.unique(outcome, return_counts=True), strict=True)
    }
    final_by_outcome = {
        str(k): int(v) for k, v in zip(*np.unique(lr.outcome, return_counts=True), strict=True)
    }
    open_loop = bool(np.any(np.isfinite(_f(cols, "t_intended"))))
    est = _s(cols, "tokens_source") == "estimated"
    out: dict[str, Any] = {
        "duration_s": round(float(duration_s), 3),
        "attempts": n_att,
        "requests": n_req,
        "requests_ok": n_ok,
        "requests_per_s": round(n_req / dur, 3),
        "ok_requests_per_s": round(n_ok / dur, 3),
        "attempts_per_s": round(n_att / dur, 3),
        "output_tokens_per_s": round(float(comp[ok].sum()) / dur, 3),
        "input_tokens_per_s": round(float(prompt[ok].sum()) / dur, 3),
        "tokens_estimated_share": round(float(est.mean()), 4) if n_att else 0.0,
        "error_rate": round(1 - n_ok / n_req, 6) if n_req else 0.0,
        "attempt_error_rate": round(1 - int(ok.sum()) / n_att, 6) if n_att else 0.0,
        "outcomes": by_outcome,
        "final_outcomes": final_by_outcome,
        "ttft_ms": _pcts(ttft[ok]),
        "itl_ms": _pcts(_f(cols, "itl_mean_ms")[ok]),
        "itl_p99_max_ms": _max_or_none(_f(cols, "itl_p99_ms")[ok]),
        "e2e_ms": _pcts(e2e[ok]),
        "request_latency_ms": _pcts(lr.latency_ms[lr.ok]),
        "open_loop": open_loop,
        "cost_usd_total": round(total_cost, 8) if priced else None,
        "cost_usd_per_request": round(total_cost / n_req, 10) if n_req and priced else None,
        "cost_usd_per_ok_request": round(total_cost / n_ok, 10) if n_ok and priced else None,
    }
    out["reconnects"] = int(np.asarray(cols["reconnects"], dtype=np.int64).sum())
    out["tokens_estimated_ok_share"] = round(float(est[ok].mean()), 4) if ok.any() else 0.0
    out.update(served(cols))
    out["providers"] = by_provider(cols)
    mismatch = model_mismatches(cols)
    if mismatch:
        out["model_mismatch"] = mismatch
    if open_loop:
        out["sched_lag_ms"] = _pcts(lag)
        out["ttft_from_intended_ms"] = _pcts((ttft + lag0)[ok])
        out["e2e_from_intended_ms"] = _pcts((e2e + lag0)[ok])
    if slo is not None:
        out["slo"] = evaluate_slo(out, slo)
    return out


def _max_or_none(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return round(float(v.max()), 3) if v.size else None


def evaluate_slo(summary: Mapping[str, Any], slo: Any) -> dict[str, Any]:
    """Each SLO threshold against the summary; `breached` lists the failing checks.

    Open-loop runs judge TTFT and E2E from the intended time (what users felt).
    """
    checks: list[dict[str, Any]] = []
    open_loop = summary.get("open_loop", False)
    metrics = {
        "ttft_ms": "ttft_from_intended_ms" if open_loop else "ttft_ms",
        "itl_ms": "itl_ms",
        "e2e_ms": "e2e_from_intended_ms" if open_loop else "e2e_ms",
    }
    for field, key in metrics.items():
        thresholds = getattr(slo, field, None) or {}
        dist = summary.get(key) or {}
        for pct, limit in thresholds.items():
            name = pct if str(pct).startswith("p") else f"p{pct}"
            value = _percentile_value(summary, key, dist, name)
            ok = value is not None and value <= float(limit)
            checks.append(
                {"metric": f"{field}.{name}", "value": value, "limit": float(limit), "ok": ok}
            )
    err_limit = getattr(slo, "error_rate", None)
    if err_limit is not None:
        value = float(summary.get("error_rate", 0.0))
        checks.append(
            {
                "metric": "error_rate",
                "value": value,
                "limit": float(err_limit),
                "ok": value <= float(err_limit),
            }
        )
    return {"checks": checks, "breached": [c["metric"] for c in checks if not c["ok"]]}


def _percentile_value(
    summary: Mapping[str, Any], key: str, dist: Mapping[str, Any], name: str
) -> float | None:
    if name in dist:
        return dist[name]
    # A percentile the table does not carry (e.g. p90) is not guessed.
    return None


def format_table(summary: Mapping[str, Any]) -> str:
    """The human summary printed at the end of `loadkit run`."""
    lines: list[str] = []
    rows = [
        ("TTFT", summary.get("ttft_ms")),
        ("ITL (mean/req)", summary.get("itl_ms")),
        ("E2E", summary.get("e2e_ms")),
    ]
    if summary.get("open_loop"):
        rows += [
            ("TTFT from intended", summary.get("ttft_from_intended_ms")),
            ("E2E from intended", summary.get("e2e_from_intended_ms")),
            ("schedule lag", summary.get("sched_lag_ms")),
        ]
    lines.append(f"{'latency (ms)':<20}{'p50':>10}{'p95':>10}{'p99':>10}{'n':>9}")
    for label, d in rows:
        d = d or {}
        lines.append(
            f"{label:<20}"
            + "".join(_cell(d.get(f"p{p}")) for p in PERCENTILES)
            + f"{d.get('n', 0):>9}"
        )
    lines.append("")
    never = int((summary.get("outcomes") or {}).get("not_sent", 0))
    lines.append(
        f"requests {summary['requests']} ({summary['requests_ok']} ok,"
        f" {summary['attempts']} attempts"
        + (f", {never} never sent: the run ended while they waited for a slot" if never else "")
        + ")"
        f" in {summary['duration_s']:.1f}s: {summary['requests_per_s']:.2f} req/s,"
        f" {summary['output_tokens_per_s']:.1f} output tokens/s"
    )
    outcomes = summary.get("outcomes", {})
    bad = {k: v for k, v in outcomes.items() if k != "ok"}
    n_att = max(int(summary.get("attempts", 0)), 1)
    err = ", ".join(f"{k} {v} ({100 * v / n_att:.1f}%)" for k, v in sorted(bad.items())) or "none"
    lines.append(
        f"error rate {100 * summary['error_rate']:.2f}% of requests; attempts failed: {err}"
    )
    per = summary.get("cost_usd_per_request")
    per_ok = summary.get("cost_usd_per_ok_request")
    if summary.get("cost_usd_total") is None:
        lines.append("cost n/a (no pricing for this scenario's model)")
    else:
        lines.append(
            f"cost ${summary['cost_usd_total']:.6f} total, "
            + (f"${per:.8f} per request" if per is not None else "n/a per request")
            + (f", ${per_ok:.8f} per successful request" if per_ok is not None else "")
        )
    est = summary.get("tokens_estimated_share")
    if est:
        est_ok = summary.get("tokens_estimated_ok_share")
        why = (
            "only failed attempts, which got no usage from the service"
            if est_ok == 0.0
            else f"{100 * est_ok:.0f}% of successful ones"
            if est_ok is not None
            else ""
        )
        lines.append(
            f"({100 * est:.0f}% of attempts' tokens estimated" + (f": {why})" if why else ")")
        )
    if summary.get("reconnects"):
        lines.append(
            f"{summary['reconnects']:,} stale pooled connections replaced before their requests"
            " were answered (not counted as attempts)"
        )
    lines += provider_lines(summary.get("providers") or [])
    lines += mismatch_lines(summary.get("model_mismatch") or [])
    slo = summary.get("slo")
    if slo:
        for c in slo["checks"]:
            v = "n/a" if c["value"] is None else f"{c['value']:g}"
            verdict = "ok" if c["ok"] else "BREACHED"
            lines.append(f"SLO {c['metric']:<18} {v:>10} <= {c['limit']:g}  {verdict}")
    return "\n".join(lines)


def _cell(v: float | None) -> str:
    return f"{'-':>10}" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:>10.1f}"
