"""Mock profiles: YAML -> validated, frozen dataclasses, with `file:line: key.path` errors.

A profile is the latency/capacity model of one region. `--config` may override any key
globally and per region, and `PATCH /admin/config` reuses the same validation at run time.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from loadkit.errors import UserError

DEFAULT_PROFILE = "hosted-api"


@dataclass(frozen=True)
class ModelSpec:
    id: str
    kind: str = "chat"  # chat | embedding
    dimensions: int = 1536  # embedding models only
    owned_by: str = "mock"


@dataclass(frozen=True)
class Jitter:
    """Multiplicative noise: lognormal body plus a rare Pareto stall on prefill."""

    sigma: float = 0.0  # lognormal sigma of each request's prefill time
    step_sigma: float = 0.0  # lognormal sigma of each decode step
    tail_prob: float = 0.0  # chance that a request's prefill also hits a heavy-tail stall
    tail_alpha: float = 1.5  # Pareto shape of that stall multiplier (smaller = heavier)
    tail_max: float = 20.0  # cap on the stall multiplier


@dataclass(frozen=True)
class OutputTokens:
    """Distribution of the natural output length (before `max_tokens` caps it)."""

    dist: str = "lognormal"  # lognormal | fixed | uniform
    median: float = 180.0  # lognormal
    p90: float = 450.0  # lognormal
    value: int = 100  # fixed
    low: int = 1  # uniform, inclusive
    high: int = 256  # uniform, inclusive
    max: int = 16384  # hard cap on any draw


@dataclass(frozen=True)
class PrefixCache:
    enabled: bool = True
    block_tokens: int = 16  # cached tokens are whole blocks of this many tokens
    capacity_blocks: int = 100_000  # LRU capacity
    min_prompt_tokens: int = 0  # prompts shorter than this are never cached


@dataclass(frozen=True)
class RateLimits:
    rpm: int | None = None  # requests per minute per API key; None = unlimited
    tpm: int | None = None  # tokens per minute per API key; None = unlimited
    burst_seconds: float = 60.0  # bucket holds this many seconds of the rate


@dataclass(frozen=True)
class Profile:
    name: str = "custom"
    models: tuple[ModelSpec, ...] = ()
    max_num_seqs: int = 256
    max_waiting: int = 1024
    prefill_overhead_ms: float = 20.0
    prefill_ms_per_token: float = 0.05
    decode_step_ms: float = 10.0
    decode_step_ms_per_seq: float = 0.05
    jitter: Jitter = field(default_factory=Jitter)
    output_tokens: OutputTokens = field(default_factory=OutputTokens)
    context_length: int = 128_000
    latency_scale: float = 1.0
    prefix_cache: PrefixCache = field(default_factory=PrefixCache)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    require_api_key: bool = False
    api_keys: tuple[str, ...] = ()
    max_body_bytes: int = 2_000_000
    # the copilot route (POST /api/ask): its retrieval step before generation
    retrieval_ms: float = 40.0  # retrieval time with nothing else in flight
    retrieval_ms_per_request: float = 0.2  # added per request in flight in the region
    retrieved_tokens: int = 600  # passages the retrieval adds to the prompt
    port: int = 0  # a region's own listener port (0 = OS chooses)

    def model(self, model_id: str) -> ModelSpec | None:
        for m in self.models:
            if m.id == model_id:
                return m
        return None


# ---------------------------------------------------------------- YAML with line numbers


class _Located:
    """A YAML value plus the line of every key path inside it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}

    def where(self, path: str) -> str:
        line = self.lines.get(path)
        while line is None and path:
            path = path.rpartition(".")[0]
            line = self.lines.get(path)
        return f"{self.source}:{line}" if line else self.source


def _to_python(node: yaml.Node, path: str, loc: _Located, loader: yaml.SafeLoader) -> Any:
    loc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(loader.construct_object(key_node))
            sub = f"{path}.{key}" if path else key
            loc.lines[sub] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, sub, loc, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, f"{path}[{i}]", loc, loader) for i, v in enumerate(node.value)]
    return loader.construct_object(node)


def load_yaml(text: str, source: str) -> tuple[Any, _Located]:
    loc = _Located(source)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{source}{line}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    if node is None:
        return {}, loc
    return _to_python(node, "", loc, yaml.SafeLoader("")), loc


# ---------------------------------------------------------------- validation


def _fail(loc: _Located | None, path: str, what: str, got: Any) -> UserError:
    if loc is None:  # run-time changes (admin API) have no file
        return UserError(f"{path}: {what}, got {got!r}")
    return UserError(f"{loc.where(path)}: {path}: {what}, got {got!r}")


def _number(value: Any, path: str, loc: _Located | None, *, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(loc, path, f"expected a number >= {low:g}", value)
    if value < low:
        raise _fail(loc, path, f"expected a number >= {low:g}", value)
    return float(value)


def _integer(value: Any, path: str, loc: _Located | None, *, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(loc, path, f"expected an integer >= {low}", value)
    return value


def _bool(value: Any, path: str, loc: _Located | None) -> bool:
    if not isinstance(value, bool):
        raise _fail(loc, path, "expected true or false", value)
    return value


def _mapping(value: Any, path: str, loc: _Located | None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(loc, path, "expected a mapping", value)
    return value


def _sub(cls: type, base: Any, value: Any, path: str, loc: _Located | None) -> Any:
    """Merge a mapping of overrides into a nested frozen dataclass."""
    value = _mapping(value, path, loc)
    names = {f.name: f for f in dataclasses.fields(cls)}
    changes: dict[str, Any] = {}
    for key, raw in value.items():
        sub = f"{path}.{key}"
        if key not in names:
            raise _fail(loc, sub, f"unknown key (expected one of {', '.join(names)})", key)
        current = getattr(base, key)
        if key == "dist":
            if raw not in ("lognormal", "fixed", "uniform"):
                raise _fail(loc, sub, "expected lognormal, fixed or uniform", raw)
            changes[key] = raw
        elif isinstance(current, bool):
            changes[key] = _bool(raw, sub, loc)
        elif key in ("rpm", "tpm"):
            changes[key] = None if raw is None else _integer(raw, sub, loc, low=1)
        elif isinstance(current, int):
            changes[key] = _integer(raw, sub, loc, low=0 if key == "min_prompt_tokens" else 1)
        else:
            changes[key] = _number(raw, sub, loc)
    out = dataclasses.replace(base, **changes)
    _check_sub(out, path, loc)
    return out


def _check_sub(obj: Any, path: str, loc: _Located | None) -> None:
    if isinstance(obj, OutputTokens):
        if obj.dist == "lognormal" and not (0 < obj.median < obj.p90):
            raise _fail(loc, f"{path}.p90", "expected 0 < median < p90", (obj.median, obj.p90))
        if obj.dist == "uniform" and obj.low > obj.high:
            raise _fail(loc, f"{path}.high", "expected low <= high", (obj.low, obj.high))
    if isinstance(obj, Jitter):
        if obj.tail_prob > 1:
            raise _fail(loc, f"{path}.tail_prob", "expected a probability in [0, 1]", obj.tail_prob)
        if obj.tail_alpha <= 0:
            raise _fail(loc, f"{path}.tail_alpha", "expected a number > 0", obj.tail_alpha)
        if obj.tail_max < 1:
            raise _fail(loc, f"{path}.tail_max", "expected a number >= 1", obj.tail_max)
    if isinstance(obj, Timeouts) and obj.idle_s <= 0:
        raise _fail(loc, f"{path}.idle_s", "expected a number > 0", obj.idle_s)
    if isinstance(obj, RateLimits) and obj.burst_seconds <= 0:
        raise _fail(loc, f"{path}.burst_seconds", "expected a number > 0", obj.burst_seconds)


def _models(value: Any, path: str, loc: _Located | None) -> tuple[ModelSpec, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(loc, path, "expected a non-empty list of models", value)
    out = []
    for i, item in enumerate(value):
        sub = f"{path}[{i}]"
        if isinstance(item, str):
            item = {"id": item}
        item = _mapping(item, sub, loc)
        if not isinstance(item.get("id"), str) or not item["id"]:
            raise _fail(loc, f"{sub}.id", "expected a model id string", item.get("id"))
        kind = item.get("kind", "chat")
        if kind not in ("chat", "embedding"):
            raise _fail(loc, f"{sub}.kind", "expected chat or embedding", kind)
        unknown = set(item) - {"id", "kind", "dimensions", "owned_by"}
        if unknown:
            raise _fail(loc, f"{sub}.{sorted(unknown)[0]}", "unknown key", sorted(unknown)[0])
        dims = _integer(item.get("dimensions", 1536), f"{sub}.dimensions", loc, low=1)
        owned_by = str(item.get("owned_by", "mock"))
        out.append(ModelSpec(id=item["id"], kind=kind, dimensions=dims, owned_by=owned_by))
    return tuple(out)


_NESTED = {
    "jitter": Jitter,
    "output_tokens": OutputTokens,
    "prefix_cache": PrefixCache,
    "rate_limits": RateLimits,
}
PROFILE_KEYS = tuple(f.name for f in dataclasses.fields(Profile))


def apply_overrides(
    base: Profile, values: Mapping[str, Any], path: str = "", loc: _Located | None = None
) -> Profile:
    """Return `base` with `values` applied; raises UserError naming the bad key."""
    changes: dict[str, Any] = {}
    for key, raw in values.items():
        sub = f"{path}.{key}" if path else key
        if key not in PROFILE_KEYS:
            raise _fail(loc, sub, "unknown profile key", key)
        if key in _NESTED:
            if raw is None and key == "rate_limits":
                raw = {"rpm": None, "tpm": None}
            changes[key] = _sub(_NESTED[key], getattr(base, key), raw, sub, loc)
        elif key == "models":
            changes[key] = _models(raw, sub, loc)
        elif key == "name":
            changes[key] = str(raw)
        elif key == "api_keys":
            if not isinstance(raw, list) or not all(isinstance(k, str) and k for k in raw):
                raise _fail(loc, sub, "expected a list of key strings", raw)
            changes[key] = tuple(raw)
        elif key == "require_api_key":
            changes[key] = _bool(raw, sub, loc)
        elif key in ("max_num_seqs", "context_length", "max_body_bytes"):
            changes[key] = _integer(raw, sub, loc, low=1)
        elif key in ("max_waiting", "port", "retrieved_tokens"):
            changes[key] = _integer(raw, sub, loc, low=0)
        elif key == "latency_scale":
            changes[key] = _number(raw, sub, loc, low=0.0)
        else:
            changes[key] = _number(raw, sub, loc)
    out = dataclasses.replace(base, **changes)
    if not out.models:
        raise _fail(loc, f"{path}.models" if path else "models", "expected at least one", [])
    if out.require_api_key and not out.api_keys:
        where = f"{path}.api_keys" if path else "api_keys"
        raise _fail(loc, where, "require_api_key needs at least one key", [])
    return out


# ---------------------------------------------------------------- loading


def _profile_text(name: str) -> tuple[str, str]:
    """(text, source label) for a bundled profile name or a YAML path."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise UserError(f"{name}: cannot read profile: {exc.strerror}") from None
    ref = resources.files("mocks") / "profiles" / f"{name}.yaml"
    if not ref.is_file():
        raise UserError(f"unknown profile {name!r} (bundled: {', '.join(bundled_profiles())})")
    return ref.read_text(encoding="utf-8"), f"mocks/profiles/{name}.yaml"


def bundled_profiles() -> list[str]:
    folder = resources.files("mocks") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_profile(name: str) -> Profile:
    text, source = _profile_text(name)
    data, loc = load_yaml(text, source)
    data = _mapping(data, "", loc) if data else {}
    return apply_overrides(Profile(name=name), data, "", loc)


@dataclass(frozen=True)
class Timeouts:
    """How long the listeners wait on a client (seconds; 0 = no limit), for every region.

    Without them a client that trickles its headers or body a byte at a time, or opens
    connections and stays silent, holds a connection (and a file descriptor) for good.
    """

    header_s: float = 10.0  # connection start / first byte of a request -> headers complete
    body_s: float = 30.0  # headers complete -> whole body read (408 and close past it)
    idle_s: float = 75.0  # a kept-alive connection with no request is closed after this


@dataclass(frozen=True)
class MockConfig:
    """What the server runs: the ordered regions, each with its own profile."""

    regions: tuple[tuple[str, Profile], ...]
    seed: int = 0
    timeouts: Timeouts = field(default_factory=Timeouts)


def load_config(
    profile: str | None = None,
    config_file: str | None = None,
    regions: list[str] | None = None,
    seed: int = 0,
    timeouts: Mapping[str, float] | None = None,
) -> MockConfig:
    """Combine `--profile`, `--config FILE`, `--regions` and the timeout flags (which win
    over the file's `timeouts:`) into a MockConfig."""
    data: Mapping[str, Any] = {}
    loc: _Located | None = None
    if config_file:
        try:
            text = Path(config_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{config_file}: cannot read config: {exc.strerror}") from None
        raw, loc = load_yaml(text, config_file)
        data = _mapping(raw, "", loc) if raw is not None else {}
    name = profile or data.get("profile") or DEFAULT_PROFILE
    if not isinstance(name, str):
        raise _fail(loc, "profile", "expected a profile name", name)
    try:
        base = load_profile(name)
    except UserError as exc:
        if loc and not profile and "profile" in data:
            raise UserError(f"{loc.where('profile')}: profile: {exc}") from None
        raise
    top = {k: v for k, v in data.items() if k not in ("profile", "regions", "timeouts")}
    base = apply_overrides(base, top, "", loc)
    region_data = data.get("regions") or {}
    region_data = _mapping(region_data, "regions", loc)
    names = regions if regions else (list(region_data) or ["default"])
    for key in region_data:
        if key not in names:
            raise _fail(loc, f"regions.{key}", f"region not in --regions {','.join(names)}", key)
    out = []
    seen = set()
    for rname in names:
        if not rname or not rname.replace("-", "").replace("_", "").isalnum():
            raise UserError(f"region name {rname!r}: use letters, digits, '-' or '_'")
        if rname in seen:
            raise UserError(f"region {rname!r} is listed twice")
        seen.add(rname)
        over = region_data.get(rname) or {}
        over = _mapping(over, f"regions.{rname}", loc)
        out.append((rname, apply_overrides(base, over, f"regions.{rname}", loc)))
    limits = Timeouts()
    if data.get("timeouts") is not None:
        limits = _sub(Timeouts, limits, data["timeouts"], "timeouts", loc)
    if timeouts:
        limits = _sub(Timeouts, limits, timeouts, "--timeouts", None)
    return MockConfig(regions=tuple(out), seed=seed, timeouts=limits)
