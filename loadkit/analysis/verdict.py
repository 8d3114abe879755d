"""The readiness verdict: go / no-go per check, each with the evidence beside it.

An operational readiness review before a scale-up asks four things: does the service meet
its SLOs, does it recover from failures (and does failover work), is the spend sustainable,
and is every region's experience acceptable. A check the run could not answer (no faults
injected, no budget or pricing, no SLO) is "not tested", never a silent go.

Failed requests can never add up to a go: a run in which nothing succeeded is no-go, and
so is one whose failed requests exceed the scenario's `slo.error_rate`, or, when it sets
none, `DEFAULT_ERROR_RATE`. Every no-go item carries a one-line `reason` (the measured
value against its limit), and `decided_by` names the first, so the console and the
report say which check decided a no-go even when every SLO line says ok.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from loadkit.analysis.models import mismatch_lines
from loadkit.analysis.slo import Limits
from loadkit.fmt import fmt_ms

GO, NO_GO, NOT_TESTED, INFO = "go", "no-go", "not tested", "info"
# Failed requests a run may have when its scenario sets no `slo.error_rate` (1%).
DEFAULT_ERROR_RATE = 0.01

_NAMES = {"ttft_ms": "TTFT", "e2e_ms": "E2E", "itl_ms": "ITL"}


def _ms(v: float | None) -> str:
    """Two decimals of a second at every size: a figure sits next to its limit."""
    return fmt_ms(v, tenths_s_from=math.inf)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _usd(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"${v:,.2f}" if v >= 1 else f"${v:.6f}"


def _item(area: str, check: str, status: str, evidence: str, reason: str = "") -> dict[str, str]:
    """One row; a no-go's `reason` is the measured value against its limit, in one line."""
    item = {"area": area, "check": check, "status": status, "evidence": evidence}
    if status == NO_GO:
        item["reason"] = reason or f"{check}: {evidence}"
    return item


def _error_limit(lim: Limits) -> float:
    return lim.error_rate if lim.error_rate is not None else DEFAULT_ERROR_RATE


def _slo_items(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    slo = summary.get("slo")
    if not slo or not slo.get("checks"):
        return [_item("SLO", "service level objectives", NOT_TESTED, "the scenario sets no SLO")]
    items = []
    basis = " from the intended send time" if summary.get("open_loop") else ""
    for c in slo["checks"]:
        metric = c["metric"]
        if metric == "error_rate":
            name, value, limit = "error rate", _pct(c["value"]), _pct(c["limit"])
        else:
            field, pct = metric.split(".")
            name = f"{pct} {_NAMES.get(field, field)}{basis if field != 'itl_ms' else ''}"
            value, limit = _ms(c["value"]), _ms(c["limit"])
        status = GO if c["ok"] else NO_GO
        items.append(
            _item(
                "SLO",
                name,
                status,
                f"{value} against a limit of {limit}",
                f"{name} {value} > {limit}",
            )
        )
    return items


def _traffic_items(summary: Mapping[str, Any], lim: Limits) -> list[dict[str, str]]:
    """Did anything succeed, and did few enough requests fail (even with no SLO set)?"""
    n = int(summary.get("requests") or 0)
    if not n:
        return [_item("traffic", "requests", NO_GO, "no request completed: nothing was measured")]
    n_ok = int(summary.get("requests_ok") or 0)
    outcomes = summary.get("final_outcomes") or {}
    failed = ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items()) if k != "ok")
    if not n_ok:
        ev = f"none of {n:,} requests succeeded ({failed})"
        return [_item("traffic", "requests", NO_GO, ev, f"{ev}")]
    if lim.error_rate is not None:
        return []  # the scenario's own error-rate SLO judges it (an SLO line)
    rate = float(summary.get("error_rate") or 0.0)
    ok = rate <= DEFAULT_ERROR_RATE
    ev = (
        f"{_pct(rate)} of {n:,} requests failed after retries"
        + (f" ({failed})" if failed else "")
        + f"; limit {_pct(DEFAULT_ERROR_RATE)}, loadkit's default (set slo.error_rate to change it)"
    )
    reason = f"failed requests {_pct(rate)} > {_pct(DEFAULT_ERROR_RATE)} (loadkit's default limit)"
    return [_item("traffic", "failed requests", GO if ok else NO_GO, ev, reason)]


def _load_items(summary: Mapping[str, Any], extra: Mapping[str, Any]) -> list[dict[str, str]]:
    """Did the service keep up with the planned load? Judged whatever the SLOs say."""
    check = "the service kept up with the planned load"
    if not summary.get("open_loop"):
        from loadkit.analysis.offered import not_applicable

        return [_item("traffic", check, NOT_TESTED, not_applicable())]
    o = extra.get("offered")
    if not o:
        return [_item("traffic", check, NOT_TESTED, "no open-loop arrivals were recorded")]
    status = GO if o["kept_up"] else NO_GO
    return [_item("traffic", check, status, o["evidence"], o["reason"])]


def _resilience_items(extra: Mapping[str, Any], lim: Limits) -> list[dict[str, str]]:
    faults = extra.get("faults") or []
    if not faults:
        return [
            _item(
                "resilience",
                "recovery after failures",
                NOT_TESTED,
                "no faults were injected in this run (see scenarios/outage-drill.yaml)",
            )
        ]
    items = []
    for f in faults:
        during = (
            f"during the window: error rate {_pct(f['error_rate'])}, p95 TTFT "
            f"{_ms(f['ttft_p95_ms'])}, {f['failed_attempts_injected']} injected and "
            f"{f['failed_attempts_organic']} organic failed attempts"
        )
        check = f"recovery from {f['fault_id']} ({f['kind']})"
        if f["recovered"]:
            ev = f"back within limits {f['recovery_s']:.0f} s after the window ended; {during}"
            status = GO
        else:
            ev = f"{f['recovery_note']}; {during}"
            status = NO_GO
        items.append(_item("resilience", check, status, ev, f"{check}: {f['recovery_note']}"))
        up = f.get("upstream")
        back = (f.get("recovery_by_upstream") or {}).get(up) if up else None
        if up and back is None:
            items.append(
                _item(
                    "resilience",
                    f"upstream {up} serving again after {f['fault_id']}",
                    NOT_TESTED,
                    "no record names the upstream that served it (no served_by): see "
                    "target.served_by_headers",
                )
            )
        elif up and back is not None:
            check = f"upstream {up} serving again after {f['fault_id']}"
            if back["recovered"]:
                ev = (
                    f"the gateway sent traffic back to {up}, within limits, "
                    f"{back['recovery_s']:.0f} s after the window ended"
                )
                items.append(_item("resilience", check, GO, ev))
            else:
                ev = f"{back['recovery_note']} (the gateway did not send traffic back to {up})"
                items.append(_item("resilience", check, NO_GO, ev, f"{check}: {ev}"))
    fo = extra.get("failover") or {}
    if fo.get("requests"):
        share = fo["ok"] / fo["requests"]
        need = 1.0 - _error_limit(lim)
        items.append(
            _item(
                "resilience",
                "failover",
                GO if share >= need else NO_GO,
                f"{fo['ok']} of {fo['requests']} requests that failed over to another region "
                f"succeeded ({_pct(share)}; needs {_pct(need)})",
                f"failover: {_pct(share)} of failed-over requests succeeded < {_pct(need)}",
            )
        )
    return items


def _cost_items(
    extra: Mapping[str, Any], requests: int, mismatch: list[dict[str, Any]] | None = None
) -> list[dict[str, str]]:
    cost = extra.get("cost") or {}
    items = []
    cap = cost.get("budget_requests")
    if cap is not None:
        items.append(
            _item(
                "cost",
                "requests against budget",
                GO if requests <= cap else NO_GO,
                f"{requests:,} requests of a budget of {cap:,} per run",
            )
        )
    for line in mismatch_lines(mismatch or []):
        items.append(_item("cost", "model that answered", INFO, line.removeprefix("warning: ")))
    if not cost.get("priced"):
        return [
            *items,
            _item("cost", "cost sustainability", NOT_TESTED, "no prices for this model"),
        ]
    ev = (
        f"{_usd(cost['per_ok_request_usd'])} per successful request; "
        f"{_pct(cost['wasted_share'])} of spend on failed attempts, "
        f"{_pct(cost['retry_share'])} on retries"
    )
    budget = cost.get("budget_usd")
    if budget is None:
        items.append(_item("cost", "spend against budget", NOT_TESTED, ev + "; no budget set"))
    else:
        spent = cost["total_usd"]
        planned = cost.get("planned_run_cost_usd")
        worst = max(spent, planned or 0.0)
        extra_ev = f"; the full scenario is planned at {_usd(planned)}" if planned else ""
        items.append(
            _item(
                "cost",
                "spend against budget",
                GO if worst <= budget else NO_GO,
                f"this run spent {_usd(spent)} of a {_usd(budget)} budget{extra_ev}; {ev}",
            )
        )
    proj = cost.get("monthly_projection")
    if proj:
        ev = (
            f"{_usd(proj['monthly_usd'])} per month at the measured "
            f"{proj['measured_requests_per_s']:.2f} requests/s"
        )
        if "monthly_usd_at_planned_peak" in proj:
            ev += (
                f"; {_usd(proj['monthly_usd_at_planned_peak'])} at the scenario's planned peak "
                f"of {proj['planned_peak_requests_per_s']:.2f} requests/s"
            )
        if proj.get("rate_note"):
            ev += f" ({proj['rate_note']})"
        items.append(_item("cost", "monthly projection", INFO, ev))
    return items


def _region_items(extra: Mapping[str, Any], lim: Limits) -> list[dict[str, str]]:
    rows = (extra.get("breakdown") or {}).get("region") or []
    items = []
    err_lim = _error_limit(lim)
    felt = "as users felt it (retries included)"
    for r in rows:
        p95 = r["ttft_ms"]["p95"]
        e95 = r["e2e_ms"]["p95"]
        bad: list[tuple[str, str]] = []
        if r["error_rate"] > err_lim:
            bad.append(("error rate", f"error rate {_pct(r['error_rate'])} > {_pct(err_lim)}"))
        if lim.ttft_p95_ms is not None and (p95 is None or p95 > lim.ttft_p95_ms):
            bad.append(("p95 TTFT", f"p95 TTFT {felt} {_ms(p95)} > {_ms(lim.ttft_p95_ms)}"))
        e_lim = lim.e2e_ms
        if e_lim is not None and (e95 is None or e95 > e_lim):
            bad.append(("p95 E2E", f"p95 E2E {felt} {_ms(e95)} > {_ms(e_lim)}"))
        ev = (
            f"{r['requests']} requests, error rate {_pct(r['error_rate'])}, p95 TTFT {_ms(p95)}, "
            f"p95 E2E {_ms(e95)} as users felt them (retries included)"
        )
        if bad:
            ev += f"; over the limit: {', '.join(b for b, _ in bad)}"
        check = f"region {r['region']}"
        reason = f"{check}: " + "; ".join(why for _, why in bad)
        items.append(_item("customer impact", check, NO_GO if bad else GO, ev, reason))
    return items


def verdict(summary: Mapping[str, Any], extra: Mapping[str, Any], lim: Limits) -> dict[str, Any]:
    items = (
        _load_items(summary, extra)
        + _traffic_items(summary, lim)
        + _slo_items(summary)
        + _resilience_items(extra, lim)
        + _cost_items(extra, int(summary.get("requests") or 0), summary.get("model_mismatch"))
        + _region_items(extra, lim)
    )
    g = extra.get("goodput") or {}
    if g.get("good_share") is not None:
        items.insert(
            0,
            _item(
                "SLO",
                "goodput",
                INFO,
                f"{g['goodput_per_s']:.2f} requests/s succeeded within every SLO limit "
                f"({_pct(g['good_share'])} of requests)",
            ),
        )
    return _overall(items)


def _overall(items: list[dict[str, str]]) -> dict[str, Any]:
    failing = [i["check"] for i in items if i["status"] == NO_GO]
    untested = [i["check"] for i in items if i["status"] == NOT_TESTED]
    reasons = [i["reason"] for i in items if i["status"] == NO_GO]
    return {
        "overall": NO_GO if failing else GO,
        "failing": failing,
        "not_tested": untested,
        "decided_by": reasons[0] if reasons else None,
        "reasons": reasons,
        "items": items,
    }


def headline(v: Mapping[str, Any]) -> str:
    """The verdict in one line: `GO` or `NO-GO: <the check that decided it>`."""
    if v["overall"] != NO_GO:
        untested = v.get("not_tested") or []
        return "GO" + (f" ({len(untested)} not tested: {', '.join(untested)})" if untested else "")
    reasons = v.get("reasons") or [v.get("decided_by") or ", ".join(v["failing"])]
    more = f" (and {len(reasons) - 1} more: {'; '.join(reasons[1:])})" if len(reasons) > 1 else ""
    return f"NO-GO: {reasons[0]}{more}"


def with_stop_reason(v: Mapping[str, Any], stop_reason: str | None) -> dict[str, Any]:
    """The verdict with a no-go for a run its abort condition stopped (a drill gone wrong)."""
    out = dict(v)
    if not stop_reason or not stop_reason.startswith("aborted"):
        return out
    item = _item("resilience", "abort condition", NO_GO, f"the run was stopped: {stop_reason}")
    return {**out, **_overall([*v["items"], item])}
