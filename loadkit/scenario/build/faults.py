"""`faults:`: timed fault injections (kind, window, rate, where); moved verbatim from build.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loadkit.scenario import units
from loadkit.scenario.build.helpers import _env_name
from loadkit.scenario.fields import Field, Mapping, hint
from loadkit.scenario.model import FAULT_KINDS, Fault, FaultWhere

_FAULT_COMMON = ("id", "at", "for", "kind", "rate", "where")


def _status(field: Field) -> int:
    code = field.integer()
    allowed = (429, 500, 502, 503, 504, 529)
    if code not in allowed:
        field.fail(f"expected one of {', '.join(map(str, allowed))}, got {code}")
    return code


def _ms(field: Field) -> float:
    return field.duration() * 1000.0


def _after_tokens(field: Field) -> int:
    return field.integer(low=0, high=10_000_000)


def _factor(field: Field) -> float:
    return field.number(low=1, high=1000, low_open=True)


# kind -> {yaml key: (params key, parser, required)}
_FAULT_PARAMS: dict[str, dict[str, tuple[str, Callable[[Field], Any], bool]]] = {
    "http_error": {
        "status": ("status", _status, True),
        "retry_after": ("retry_after_ms", _ms, False),
    },
    "latency": {"delay": ("fixed_ms", _ms, True), "jitter": ("jitter_ms", _ms, False)},
    "refuse": {},
    "reset": {},
    "hang": {},
    "stall": {
        "after_tokens": ("after_tokens", _after_tokens, False),
        "after": ("after_ms", _ms, False),
    },
    "cut": {"after_tokens": ("after_tokens", _after_tokens, True)},
    "reset_mid": {"after_tokens": ("after_tokens", _after_tokens, True)},
    "error_frame": {"after_tokens": ("after_tokens", _after_tokens, False)},
    "malformed_chunk": {"after_tokens": ("after_tokens", _after_tokens, False)},
    "drop_usage": {},
    "slow_tokens": {"factor": ("factor", _factor, True)},
    "duplicate_chunk": {"after_tokens": ("after_tokens", _after_tokens, False)},
    "region_outage": {},
    "brownout": {
        "error_rate": ("error_rate", Field.fraction, True),
        "latency": ("added_latency_ms", _ms, False),
        "status": ("status", _status, False),
    },
}


def _faults(
    field: Field | None,
    duration_s: float,
    regions: tuple[str, ...],
    workloads: list[str],
    upstreams: tuple[str, ...] = (),
) -> tuple[Fault, ...]:
    if field is None:
        return ()
    faults: list[Fault] = []
    ids: set[str] = set()
    for i, item in enumerate(field.items()):
        if not item.is_map:
            item.fail(f"expected a fault mapping (at, for, kind, ...), got {item.what()}")
        kind_f = Mapping(item).get("kind")
        if kind_f is None:
            item.fail(f"missing required key 'kind' ({', '.join(FAULT_KINDS)})")
        kind = kind_f.choice(FAULT_KINDS)
        spec = _FAULT_PARAMS[kind]
        m = item.mapping((*_FAULT_COMMON, *spec), required=("kind", "at", "for"))
        fid = m.opt("id", Field.name, f"fault-{i + 1}")
        if fid in ids:
            m.req("id").fail(f"fault id {fid!r} is used twice")
        ids.add(fid)
        at_f, for_f = m.req("at"), m.req("for")
        at_s, for_s = at_f.duration(), for_f.duration(positive=True)
        if at_s >= duration_s:
            at_f.fail(
                f"{units.fmt_duration(at_s)} is not before the end of the run "
                f"({units.fmt_duration(duration_s)})"
            )
        if at_s + for_s > duration_s + 1e-9:
            for_f.fail(
                f"the fault would end at {units.fmt_duration(at_s + for_s)}, after the run "
                f"({units.fmt_duration(duration_s)})"
            )
        params: dict[str, Any] = {}
        for key, (pkey, parse, required) in spec.items():
            sub = m.get(key)
            if sub is None:
                if required:
                    item.fail(f"missing required key {key!r} for a {kind} fault")
                continue
            params[pkey] = parse(sub)
        if kind == "stall" and len(params) != 1:
            item.fail("a stall needs exactly one of `after_tokens` or `after` (a duration)")
        where = m.opt("where", lambda f: _where(f, regions, workloads, upstreams), FaultWhere())
        if kind == "region_outage" and where.region is None and where.upstream is None:
            item.fail("a region_outage needs `where: {region: <name>}` or `{upstream: <name>}`")
        faults.append(
            Fault(
                id=fid,
                at_s=at_s,
                for_s=for_s,
                kind=kind,
                rate=m.opt("rate", Field.fraction, 1.0),
                where=where,
                params=params,
            )
        )
    return tuple(sorted(faults, key=lambda f: f.at_s))


def _where(
    field: Field, regions: tuple[str, ...], workloads: list[str], upstreams: tuple[str, ...] = ()
) -> FaultWhere:
    m = field.mapping(("region", "model", "workload", "path", "api_key", "upstream"))
    upstream = m.opt("upstream", Field.name, None)
    if upstream is not None and upstream not in upstreams:
        m.req("upstream").fail(
            f"unknown upstream {upstream!r}{hint(upstream, upstreams)} "
            + (
                f"(declared in target.upstreams: {', '.join(upstreams)})"
                if upstreams
                else "(the target declares no `upstreams:`)"
            )
        )
    if upstream is not None and "region" in m:
        m.req("region").fail(
            "give `region` (the users' region, at loadkit's side of the target) or `upstream` "
            "(behind the target), not both"
        )
    region = m.opt("region", Field.name, None)
    if region is not None and region not in regions:
        m.req("region").fail(
            f"unknown region {region!r}{hint(region, regions)} (declared: {', '.join(regions)})"
        )
    workload = m.opt("workload", Field.name, None)
    if workload is not None and workload not in workloads:
        m.req("workload").fail(
            f"unknown workload {workload!r}{hint(workload, workloads)} "
            f"(declared: {', '.join(workloads)})"
        )
    path = m.opt("path", lambda f: f.string(), None)
    if path is not None and not path.startswith("/"):
        m.req("path").fail(
            f"expected a URL path like /v1/chat/completions, got {units.describe(path)}"
        )
    return FaultWhere(
        region=region,
        model=m.opt("model", lambda f: f.string(), None),
        workload=workload,
        path=path,
        api_key=m.opt("api_key", _env_name, None),
        upstream=upstream,
    )
