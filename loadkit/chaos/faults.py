"""The fault model: what a fault is, which requests it selects, and the one draw per request.

A request meets every active fault whose selector matches it; one uniform draw then picks at
most one of them, each with probability `rate` (a categorical draw over the matching faults,
so two faults at 30% each hit 30% each, not 30% and 21% as cascading draws would). When the
matching rates add up to more than 1 they are scaled down to share the whole.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadkit.chaos import kinds
from loadkit.scenario.model import Fault

_WHERE_KEYS = ("region", "model", "workload", "path", "api_key_sha256", "upstream")


class FaultSpecError(ValueError):
    """A fault description the proxy cannot execute (the control API answers 400)."""


def key_digest(api_key: str) -> str:
    """What selectors compare: a short SHA-256 of the key, so no key is ever stored."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Selector:
    """Which requests a fault hits; None matches everything."""

    region: str | None = None
    model: str | None = None
    workload: str | None = None
    path: str | None = None
    api_key_sha256: str | None = None
    upstream: str | None = None  # the upstream listener a request arrived on

    def matches(self, req: RequestInfo) -> bool:
        if self.region is not None and req.region != self.region:
            return False
        if self.upstream is not None and req.upstream != self.upstream:
            return False
        if self.workload is not None and req.workload != self.workload:
            return False
        if self.path is not None and not req.path.startswith(self.path):
            return False
        if self.model is not None and req.model != self.model:
            return False
        return not (self.api_key_sha256 is not None and req.api_key_sha256 != self.api_key_sha256)

    def to_json(self) -> dict[str, str]:
        return {k: v for k in _WHERE_KEYS if (v := getattr(self, k)) is not None}


@dataclass(frozen=True)
class RequestInfo:
    """What the selectors look at; `model` is read from the JSON body when some fault asks."""

    region: str
    path: str
    workload: str = ""
    model: str = ""
    api_key_sha256: str = ""
    upstream: str = ""  # set on an upstream listener (behind a gateway)


@dataclass(frozen=True)
class FaultSpec:
    """One executable fault. `max_hits` ends it after that many hits ("fail the first N")."""

    id: str
    kind: str
    rate: float = 1.0
    where: Selector = field(default_factory=Selector)
    params: Mapping[str, Any] = field(default_factory=dict)
    max_hits: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "rate": self.rate}
        if where := self.where.to_json():
            out["where"] = where
        out["params"] = dict(self.params)
        if self.max_hits is not None:
            out["max_hits"] = self.max_hits
        return out


def _show(value: Any) -> str:
    """A value for an error message: scalars as they are, containers by type only (a YAML
    alias fan-out would print for ever)."""
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:80] + "...")
    return f"a {type(value).__name__}"


def _number(name: str, value: Any) -> float | int:
    param = kinds.PARAMS[name]
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        raise FaultSpecError(f"{name}: expected a number, got {_show(value)}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise FaultSpecError(f"{name}: expected a number, got {_show(value)}") from None
    if not math.isfinite(value) or not param.in_range(value):
        raise FaultSpecError(f"{name}: must be in {param.range_text()}, got {value!r}")
    if param.type is int:
        if value != int(value):
            raise FaultSpecError(f"{name}: expected an integer, got {value!r}")
        return int(value)
    return float(value)


def fault_from_json(obj: Any, default_id: str = "fault") -> FaultSpec:
    """Validate a control-API / fault-file description into a FaultSpec."""
    if not isinstance(obj, Mapping):
        raise FaultSpecError(f"a fault is a mapping, got {type(obj).__name__}")
    unknown = set(obj) - {"id", "kind", "rate", "where", "params", "max_hits"}
    if unknown:
        raise FaultSpecError(f"unknown key(s): {', '.join(sorted(map(str, unknown)))}")
    kind_name = obj.get("kind")
    kind = kinds.BY_NAME.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None:
        names = ", ".join(kinds.NAMES)
        raise FaultSpecError(f"kind: expected one of {names}, got {_show(kind_name)}")
    fid = obj.get("id") or default_id
    if not isinstance(fid, str | int) or isinstance(fid, bool):
        raise FaultSpecError(f"id: expected a short name, got {_show(fid)}")
    fid = str(fid)
    if not fid or len(fid) > 200 or any(c in fid for c in ",\r\n"):
        raise FaultSpecError(f"id: expected a short name without commas, got {_show(fid)}")
    rate = obj.get("rate", 1.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise FaultSpecError(f"rate: expected a number in [0, 1], got {_show(rate)}")
    where_obj = obj.get("where") or {}
    if not isinstance(where_obj, Mapping):
        raise FaultSpecError("where: expected a mapping")
    bad = set(where_obj) - set(_WHERE_KEYS)
    if bad:
        raise FaultSpecError(
            f"where: unknown key(s) {', '.join(sorted(map(str, bad)))} "
            f"(have {', '.join(_WHERE_KEYS)})"
        )
    for k, v in where_obj.items():
        if v is not None and not isinstance(v, str | int | float):
            raise FaultSpecError(f"where.{k}: expected a string, got {_show(v)}")
    where = Selector(**{k: str(v) for k, v in where_obj.items() if v is not None})
    params_obj = obj.get("params") or {}
    if not isinstance(params_obj, Mapping):
        raise FaultSpecError("params: expected a mapping")
    allowed = kind.keys
    bad = set(params_obj) - allowed
    if bad:
        raise FaultSpecError(
            f"params: {', '.join(sorted(map(str, bad)))} not valid for {kind.name} "
            f"(valid: {', '.join(sorted(allowed)) or 'none'})"
        )
    params = {k: _number(k, v) for k, v in params_obj.items()}
    missing = kind.required - set(params)
    if missing:
        raise FaultSpecError(f"params: {kind.name} needs {', '.join(sorted(missing))}")
    for key, value in params.items():
        choices = kinds.PARAMS[key].choices
        if choices and value not in choices:
            raise FaultSpecError(
                f"{key}: expected one of {', '.join(map(str, choices))}, got {value}"
            )
    if kind.one_of and sum(k in params for k in kind.one_of) != 1:
        raise FaultSpecError(f"{kind.name}: needs exactly one of {' or '.join(kind.one_of)}")
    if kind.needs_region and where.region is None and where.upstream is None:
        raise FaultSpecError(f"{kind.name}: needs where.region or where.upstream")
    max_hits = obj.get("max_hits")
    if max_hits is not None and (
        isinstance(max_hits, bool) or not isinstance(max_hits, int) or max_hits < 0
    ):
        raise FaultSpecError(f"max_hits: expected an integer >= 0, got {_show(max_hits)}")
    return FaultSpec(
        id=fid, kind=kind.name, rate=float(rate), where=where, params=params, max_hits=max_hits
    )


def fault_from_scenario(fault: Fault, api_keys: Mapping[str, str] | None = None) -> FaultSpec:
    """A scenario fault as the proxy runs it; `api_keys` maps env var names to their values."""
    digest = None
    if fault.where.api_key is not None:
        value = (api_keys or {}).get(fault.where.api_key)
        # An unset variable selects nothing: a digest no key has.
        digest = key_digest(value) if value else "unset:" + fault.where.api_key
    where = Selector(
        region=fault.where.region,
        model=fault.where.model,
        workload=fault.where.workload,
        path=fault.where.path,
        api_key_sha256=digest,
        upstream=fault.where.upstream,
    )
    return FaultSpec(
        id=fault.id, kind=fault.kind, rate=fault.rate, where=where, params=dict(fault.params)
    )


def parse_header(value: str) -> FaultSpec:
    """`x-loadkit-chaos: kind=stall; after_tokens=50` (also `,` between pairs).

    Shorthands: `stall_after_tokens=50`, `cut_after_tokens=N`, `status=503` (an http_error),
    `latency_ms=300`. `id=` names the tag (default `header`); `first=N` hits only the first N
    requests that carry the same header value (counted by the proxy), so a test can script
    "fail twice, then succeed" across an SDK's retries.
    """
    pairs: dict[str, str] = {}
    for part in value.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise FaultSpecError(f"expected key=value, got {_show(part)}")
        pairs[key.strip().lower()] = val.strip()
    for short, kind in (
        ("stall_after_tokens", "stall"),
        ("stall_after_ms", "stall"),
        ("cut_after_tokens", "cut"),
        ("reset_after_tokens", "reset_mid"),
    ):
        if short in pairs:
            pairs.setdefault("kind", kind)
            pairs[short.split("_", 1)[1]] = pairs.pop(short)
    if "latency_ms" in pairs:
        pairs.setdefault("kind", "latency")
        pairs["fixed_ms"] = pairs.pop("latency_ms")
    if "status" in pairs:
        pairs.setdefault("kind", "http_error")
    fid = pairs.pop("id", "header")
    kind = pairs.pop("kind", None)
    first = pairs.pop("first", None)
    rate_text = pairs.pop("rate", "1")
    try:
        rate = float(rate_text)
    except ValueError:
        raise FaultSpecError(f"rate: expected a number in [0, 1], got {_show(rate_text)}") from None
    obj: dict[str, Any] = {"id": fid, "kind": kind, "rate": rate, "params": pairs}
    if first is not None:
        if not first.isdigit():
            raise FaultSpecError(f"first: expected an integer, got {_show(first)}")
        obj["max_hits"] = int(first)
    return fault_from_json(obj, "header")


@dataclass
class FaultCounters:
    """Per-fault tallies for the status endpoint."""

    considered: int = 0  # requests its selector matched
    hits: int = 0  # requests it was applied to (tagged)


class FaultSet:
    """The active faults, in insertion order, with counters; not thread-safe (one event loop)."""

    def __init__(self) -> None:
        self._faults: dict[str, FaultSpec] = {}
        self.counters: dict[str, FaultCounters] = {}
        self.needs_model = False
        self.needs_key = False

    def __len__(self) -> int:
        return len(self._faults)

    def __contains__(self, fid: str) -> bool:
        return fid in self._faults

    def get(self, fid: str) -> FaultSpec | None:
        return self._faults.get(fid)

    def all(self) -> list[FaultSpec]:
        return list(self._faults.values())

    def put(self, spec: FaultSpec) -> None:
        """Add or replace (counters kept on replace)."""
        self._faults[spec.id] = spec
        self.counters.setdefault(spec.id, FaultCounters())
        self._refresh()

    def remove(self, fid: str) -> bool:
        found = self._faults.pop(fid, None) is not None
        self._refresh()
        return found

    def clear(self) -> None:
        self._faults.clear()
        self._refresh()

    def reset_counters(self) -> None:
        self.counters = {fid: FaultCounters() for fid in self._faults}

    def _refresh(self) -> None:
        self.needs_model = any(f.where.model is not None for f in self._faults.values())
        self.needs_key = any(f.where.api_key_sha256 is not None for f in self._faults.values())

    def exhausted(self, spec: FaultSpec) -> bool:
        c = self.counters.get(spec.id)
        return spec.max_hits is not None and c is not None and c.hits >= spec.max_hits

    def pick(self, req: RequestInfo, u: float) -> FaultSpec | None:
        """The fault this request gets for the uniform draw `u` in [0, 1), or None."""
        matching: list[FaultSpec] = []
        for spec in self._faults.values():
            if spec.rate <= 0 or not spec.where.matches(req) or self.exhausted(spec):
                continue
            matching.append(spec)
            self.counters[spec.id].considered += 1
        return choose(matching, u)


def choose(matching: Sequence[FaultSpec], u: float) -> FaultSpec | None:
    """The categorical draw: fault i owns a slice of [0, 1) as wide as its rate."""
    if not matching:
        return None
    total = sum(f.rate for f in matching)
    scale = 1.0 / total if total > 1.0 else 1.0
    acc = 0.0
    for spec in matching:
        acc += spec.rate * scale
        if u < acc:
            return spec
    return None
