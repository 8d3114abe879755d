"""The readiness verdict: go / no-go per check, each with the evidence beside it.

An operational readiness review before a scale-up asks four things: does the service meet
its SLOs, does it recover from failures (and does failover work), is the spend sustainable,
and is every region's experience acceptable. A check the run could not answer (no faults
injected, no budget or pricing, no SLO) is "not tested", never a silent go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadkit.analysis.slo import Limits

GO, NO_GO, NOT_TESTED, INFO = "go", "no-go", "not tested", "info"

_NAMES = {"ttft_ms": "TTFT", "e2e_ms": "E2E", "itl_ms": "ITL"}


def _ms(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def _usd(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"${v:,.2f}" if v >= 1 else f"${v:.6f}"


def _item(area: str, check: str, status: str, evidence: str) -> dict[str, str]:
    return {"area": area, "check": check, "status": status, "evidence": evidence}


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
        items.append(_item("SLO", name, status, f"{value} against a limit of {limit}"))
    return items


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
        if f["recovered"]:
            ev = f"back within limits {f['recovery_s']:.0f} s after the window ended; {during}"
            status = GO
        else:
            ev = f"{f['recovery_note']}; {during}"
            status = NO_GO
        items.append(
            _item("resilience", f"recovery from {f['fault_id']} ({f['kind']})", status, ev)
        )
    fo = extra.get("failover") or {}
    if fo.get("requests"):
        share = fo["ok"] / fo["requests"]
        need = 1.0 - (lim.error_rate if lim.error_rate is not None else 0.01)
        items.append(
            _item(
                "resilience",
                "failover",
                GO if share >= need else NO_GO,
                f"{fo['ok']} of {fo['requests']} requests that failed over to another region "
                f"succeeded ({_pct(share)}; needs {_pct(need)})",
            )
        )
    return items


def _cost_items(extra: Mapping[str, Any], requests: int) -> list[dict[str, str]]:
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
        items.append(
            _item(
                "cost",
                "monthly projection",
                INFO,
                f"{_usd(proj['monthly_usd_at_peak'])} per month if traffic held the scenario's "
                f"peak of {proj['peak_requests_per_s']:.2f} requests/s"
                + (
                    f"; {_usd(proj['monthly_usd_at_mean'])} at its mean of "
                    f"{proj['mean_requests_per_s']:.2f} requests/s"
                    if "monthly_usd_at_mean" in proj
                    else ""
                ),
            )
        )
    return items


def _region_items(extra: Mapping[str, Any], lim: Limits) -> list[dict[str, str]]:
    rows = (extra.get("breakdown") or {}).get("region") or []
    items = []
    for r in rows:
        p95 = r["ttft_ms"]["p95"]
        e95 = r["e2e_ms"]["p95"]
        bad = []
        if lim.error_rate is not None and r["error_rate"] > lim.error_rate:
            bad.append("error rate")
        if lim.ttft_p95_ms is not None and (p95 is None or p95 > lim.ttft_p95_ms):
            bad.append("p95 TTFT")
        e_lim = lim.e2e_ms
        if e_lim is not None and (e95 is None or e95 > e_lim):
            bad.append("p95 E2E")
        tested = lim.error_rate is not None or lim.ttft_p95_ms is not None or e_lim is not None
        status = NO_GO if bad else GO if tested else NOT_TESTED
        ev = (
            f"{r['requests']} requests, error rate {_pct(r['error_rate'])}, p95 TTFT {_ms(p95)}, "
            f"p95 E2E {_ms(e95)} as users felt them (retries included)"
        )
        if bad:
            ev += f"; over the limit: {', '.join(bad)}"
        items.append(_item("customer impact", f"region {r['region']}", status, ev))
    return items


def verdict(summary: Mapping[str, Any], extra: Mapping[str, Any], lim: Limits) -> dict[str, Any]:
    items = (
        _slo_items(summary)
        + _resilience_items(extra, lim)
        + _cost_items(extra, int(summary.get("requests") or 0))
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
    if not summary.get("requests"):
        items.insert(
            0, _item("traffic", "requests", NO_GO, "no request completed: nothing was measured")
        )
    failing = [i["check"] for i in items if i["status"] == NO_GO]
    untested = [i["check"] for i in items if i["status"] == NOT_TESTED]
    overall = NO_GO if failing else GO
    return {"overall": overall, "failing": failing, "not_tested": untested, "items": items}


def with_stop_reason(v: Mapping[str, Any], stop_reason: str | None) -> dict[str, Any]:
    """The verdict with a no-go for a run its abort condition stopped (a drill gone wrong)."""
    out = dict(v)
    if not stop_reason or not stop_reason.startswith("aborted"):
        return out
    item = _item("resilience", "abort condition", NO_GO, f"the run was stopped: {stop_reason}")
    out["items"] = [*v["items"], item]
    out["failing"] = [*v["failing"], item["check"]]
    out["overall"] = NO_GO
    return out
