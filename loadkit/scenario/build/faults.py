"""`faults:`: timed fault injections (kind, window, rate, where); each kind's parameters come
from the fault-kind registry (loadkit/chaos/kinds.py)."""

from __future__ import annotations

from typing import Any

from loadkit.chaos import kinds as fault_kinds
from loadkit.scenario import units
from loadkit.scenario.build.helpers import _env_name
from loadkit.scenario.fields import Field, Mapping, hint
from loadkit.scenario.model import FAULT_KINDS, Fault, FaultWhere

_FAULT_COMMON = ("id", "at", "for", "kind", "rate", "where")


def _fault_param(field: Field, param: fault_kinds.FaultParam) -> Any:
    """One fault parameter as the proxy takes it (registry: loadkit/chaos/kinds.py).

    Durations are checked by the duration parser and become ms; numbers get their range.
    """
    if param.unit == "ms":
        return field.duration() * 1000.0
    if param.unit == "fraction":
        return field.fraction()
    if param.choices:
        code = field.integer()
        if code not in param.choices:
            field.fail(f"expected one of {', '.join(map(str, param.choices))}, got {code}")
        return code
    if param.type is int:
        return field.integer(low=int(param.low), high=int(param.high))
    return field.number(
        low=param.low, high=param.high, low_open=param.low_open, high_open=param.high_open
    )


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
        spec = fault_kinds.BY_NAME[kind]
        keys = tuple(p.yaml_key for p in spec.params)
        m = item.mapping((*_FAULT_COMMON, *keys), required=("kind", "at", "for"))
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
        for param in spec.params:
            sub = m.get(param.yaml_key)
            if sub is None:
                if param.required:
                    item.fail(f"missing required key {param.yaml_key!r} for a {kind} fault")
                continue
            params[param.key] = _fault_param(sub, param)
        one_of = [
            f"`{p.yaml_key}`" + (" (a duration)" if p.unit == "ms" else "")
            for p in spec.params
            if p.key in spec.one_of
        ]
        if one_of and sum(k in params for k in spec.one_of) != 1:
            item.fail(f"a {kind} needs exactly one of {' or '.join(one_of)}")
        where = m.opt("where", lambda f: _where(f, regions, workloads, upstreams), FaultWhere())
        if spec.needs_region and where.region is None and where.upstream is None:
            item.fail(f"a {kind} needs `where: {{region: <name>}}` or `{{upstream: <name>}}`")
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
