"""Located YAML tree -> validated, frozen `Scenario` (every check names file:line and key path)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from loadkit.chaos import kinds as fault_kinds
from loadkit.cost import Price, lookup_price, price_table
from loadkit.errors import UserError
from loadkit.scenario import units
from loadkit.scenario.errors import ScenarioError
from loadkit.scenario.fields import Field, Mapping, hint
from loadkit.scenario.model import (
    FAULT_KINDS,
    SDK_RETRY_STATUSES,
    Abort,
    Budget,
    ClientPolicy,
    ClosedLoad,
    DailyCurveSpec,
    Fault,
    FaultWhere,
    Load,
    OpenLoad,
    Pricing,
    RagStep,
    RatePhase,
    Region,
    Retries,
    Scenario,
    Slo,
    Target,
    Timeouts,
    TraceLoad,
    UserPhase,
    Workload,
)
from loadkit.scenario.request_fields import extra_body, prompt_cache
from loadkit.scenario.source import Value
from loadkit.workload.distributions import (
    Constant,
    Distribution,
    Empirical,
    LogNormal,
    Normal,
    Uniform,
)

MAX_PHASES = 1_000  # keeps validation and the plan quick; a day's shape is `daily:`

TOP_KEYS = (
    "name",
    "seed",
    "duration",
    "description",
    "target",
    "regions",
    "workloads",
    "load",
    "client",
    "faults",
    "slo",
    "abort",
    "pricing",
    "budget",
    "prompt_cache",
)
KNOWN_MOCK_PROFILES = ("hosted-api", "vllm-h100")
DEFAULT_MOCK_MODEL = "gpt-4o-mini"
SHARE_TOLERANCE = 1e-3
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_REF = re.compile(r"\$\{([^}]*)\}")
_URL = re.compile(r"https?://[^\s/?#]+[^\s]*")
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)")
_SECRET_HEADERS = ("authorization", "api-key", "x-api-key", "ocp-apim-subscription-key")


def build_scenario(root: Value, source_path: Path | None) -> Scenario:
    top = Field(root, "").mapping(TOP_KEYS, required=("name", "workloads", "load"))
    base_dir = source_path.parent if source_path is not None else Path(".")
    name = top.req("name").name()
    seed = top.opt("seed", lambda f: f.integer(low=0, high=2**63 - 1), 0)
    description = top.opt("description", lambda f: f.string(allow_empty=True), "")
    target = _target(top.get("target"), base_dir)
    regions = _regions(top.get("regions"))
    region_names = tuple(r.name for r in regions)
    target = _check_target_regions(top, target, region_names)
    workloads = _workloads(top.req("workloads"), target, base_dir)
    load, load_duration = _load(top.req("load"), base_dir)
    duration_s = _duration(top, load, load_duration)
    client = _client(top.get("client"), region_names)
    faults = _faults(top.get("faults"), duration_s, region_names, [w.name for w in workloads])
    slo = _slo(top.get("slo"))
    abort = _abort(top.get("abort"))
    pricing = _pricing(top.get("pricing"), target, region_names)
    budget = _budget(top.get("budget"))
    cache_mode = top.opt("prompt_cache", prompt_cache, "cold")
    return Scenario(
        name=name,
        seed=seed,
        duration_s=duration_s,
        description=description.strip(),
        target=target,
        regions=regions,
        workloads=workloads,
        load=load,
        client=client,
        faults=faults,
        slo=slo,
        pricing=pricing,
        budget=budget,
        source_path=source_path,
        abort=abort,
        prompt_cache=cache_mode,  # type: ignore[arg-type]
    )


# -- target -----------------------------------------------------------------------------


def _target(field: Field | None, base_dir: Path = Path(".")) -> Target:
    if field is None:
        return Target(kind="mock", model=DEFAULT_MOCK_MODEL, mock_profile="hosted-api")
    m = field.mapping(
        (
            "mock",
            "overrides",
            "base_url",
            "api_key_env",
            "headers",
            "model",
            "region_endpoints",
            "tokenizer",
        )
    )
    tokenizer = m.opt("tokenizer", lambda f: _tokenizer(f, base_dir), None)
    mock, base_url = m.get("mock"), m.get("base_url")
    if mock is not None and base_url is not None:
        field.fail("give either `mock: <profile>` or `base_url`, not both")
    if mock is None and base_url is None:
        field.fail("missing `mock: <profile>` (the bundled mock) or `base_url` (a real service)")
    model = m.opt("model", lambda f: f.string(), "")
    headers = m.opt("headers", _headers, {})
    endpoints = m.opt("region_endpoints", _endpoint_map, {})
    if mock is not None:
        for key in ("api_key_env",):
            if key in m:
                m.req(key).fail("only for a `base_url` target (the mock needs no key)")
        profile = mock.choice(_mock_profiles())
        overrides = m.opt("overrides", _mock_overrides, {})
        if overrides:
            _check_overrides(m.req("overrides"), profile, overrides)
        served = _mock_models(profile, overrides)
        if model and served and model not in served:
            m.req("model").fail(
                f"the mock profile {profile} serves {', '.join(served)}; "
                f"got {model!r}{hint(model, served)}"
            )
        if not model:
            model = next(iter(served), DEFAULT_MOCK_MODEL)
        return Target(
            kind="mock",
            model=model,
            mock_profile=profile,
            mock_overrides=overrides,
            headers=headers,
            region_endpoints=endpoints,
            tokenizer=tokenizer,
        )
    if "overrides" in m:
        m.req("overrides").fail("only for a `mock:` target")
    if not model:
        field.fail("missing required key 'model' (the model name the service expects)")
    return Target(
        kind="http",
        model=model,
        base_url=_url(base_url),
        api_key_env=m.opt("api_key_env", _env_name, None),
        headers=headers,
        region_endpoints=endpoints,
        tokenizer=tokenizer,
    )


def _tokenizer(field: Field, base_dir: Path) -> str:
    """A local Hugging Face `tokenizer.json` (relative to the scenario); checked by loading it."""
    from loadkit.workload.tokenizer import load_tokenizer

    path = (base_dir / field.string().strip()).resolve()
    try:
        load_tokenizer(path)
    except ValueError as exc:
        field.fail(str(exc))
    return str(path)


def _mock_profiles() -> tuple[str, ...]:
    """Profiles shipped in mocks/profiles/ (falls back to the documented two)."""
    try:
        from importlib import resources

        folder = resources.files("mocks").joinpath("profiles")
        names = sorted(
            p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")
        )
    except (ModuleNotFoundError, OSError, TypeError):
        names = []
    return tuple(names) or KNOWN_MOCK_PROFILES


def _check_overrides(field: Field, profile: str, overrides: dict[str, Any]) -> None:
    """Let the mock's own profile loader judge the override values (types, ranges)."""
    try:
        from mocks.profile import apply_overrides, bundled_profiles, load_profile
    except ImportError:  # pragma: no cover - the mock ships with loadkit
        return
    if profile not in bundled_profiles():
        return
    try:
        apply_overrides(load_profile(profile), overrides)
    except UserError as exc:
        field.fail(f"the mock rejects these overrides: {exc}")
    except (TypeError, ValueError, AttributeError) as exc:
        field.fail(f"the mock rejects these overrides: {exc}")


def _mock_models(profile: str, overrides: dict[str, Any]) -> tuple[str, ...]:
    """Model ids the mock serves with this profile, chat models first (empty if unknown)."""
    try:
        from mocks.profile import apply_overrides, bundled_profiles, load_profile

        if profile not in bundled_profiles():
            return ()
        prof = apply_overrides(load_profile(profile), overrides)
    except (ImportError, UserError, TypeError, ValueError, AttributeError):
        return ()
    models = sorted(prof.models, key=lambda spec: spec.kind != "chat")
    return tuple(spec.id for spec in models)


def _mock_overrides(field: Field) -> dict[str, Any]:
    if not field.is_map:
        field.fail(f"expected a mapping of mock profile keys, got {field.what()}")
    allowed = _profile_keys()
    out: dict[str, Any] = {}
    m = Mapping(field)
    for key, value in m.data.items():
        if allowed and key not in allowed:
            raise ScenarioError(
                m.key_locs.get(key, field.loc),
                m.sub_path(key),
                f"unknown mock profile key{hint(key, allowed) or ''}"
                + ("" if hint(key, allowed) else f" (known: {', '.join(allowed)})"),
            )
        out[key] = _plain(value)
    return out


def _profile_keys() -> tuple[str, ...]:
    try:
        from mocks.profile import PROFILE_KEYS
    except ImportError:  # pragma: no cover - the mock ships with loadkit
        return ()
    return tuple(k for k in PROFILE_KEYS if k != "name")


def _plain(value: Value) -> Any:
    if value.kind == "map":
        return {k: _plain(v) for k, v in value.data.items()}
    if value.kind == "seq":
        return [_plain(v) for v in value.data]
    return value.data


def _url(field: Field) -> str:
    text = field.string().strip()
    if not _URL.fullmatch(text):
        field.fail(
            f"expected an http(s) URL like https://api.openai.com/v1, got {units.describe(text)}"
        )
    try:
        password = urlsplit(text).password
    except ValueError:
        password = None
    if password:
        # The URL travels to every worker and into run-config.json: no secret in it.
        field.fail(
            "a password in the URL; send credentials in a header from an environment "
            "variable instead (headers: {authorization: 'Basic ${MY_CREDENTIALS}'})"
        )
    return text.rstrip("/")


def _env_name(field: Field) -> str:
    text = field.string().strip()
    if units.KEY_LIKE.match(text) or len(text) > 64:
        field.fail(
            "this looks like an API key; put the key in an environment variable and give "
            "the variable's NAME here (e.g. OPENAI_API_KEY)"
        )
    if not _ENV_NAME.fullmatch(text):
        field.fail(
            f"expected an environment variable name like OPENAI_API_KEY, got {units.describe(text)}"
        )
    return text


def _headers(field: Field) -> dict[str, str]:
    if not field.is_map:
        field.fail(f"expected a mapping of header names to values, got {field.what()}")
    m = Mapping(field)
    out: dict[str, str] = {}
    for key in m.present_keys():
        value = m.req(key)
        text = value.string(allow_empty=True)
        for ref in _ENV_REF.findall(text):
            if not _ENV_NAME.fullmatch(ref):
                value.fail(f"${{{ref}}} is not an environment variable name")
        if key.lower() in _SECRET_HEADERS and not _ENV_REF.search(text):
            value.fail(
                f"a literal secret in header {key!r}; write it as ${{ENV_VAR}} and set the "
                "variable when you run"
            )
        if units.KEY_LIKE.search(_ENV_REF.sub("", text)):
            value.fail("this looks like a literal API key; use ${ENV_VAR} instead")
        out[key] = text
    return out


def _endpoint_map(field: Field) -> dict[str, str]:
    if not field.is_map:
        field.fail(f"expected a mapping of region name to base URL, got {field.what()}")
    m = Mapping(field)
    return {key: _url(m.req(key)) for key in m.present_keys()}


def _check_target_regions(top: Mapping, target: Target, regions: tuple[str, ...]) -> Target:
    for key in target.region_endpoints:
        if key not in regions:
            tf = top.req("target")
            ef = Mapping(tf).req("region_endpoints")
            raise ScenarioError(
                Mapping(ef).key_locs.get(key, ef.loc),
                f"target.region_endpoints.{key}",
                f"unknown region{hint(key, regions)} (declared: {', '.join(regions)})",
            )
    return target


# -- regions ----------------------------------------------------------------------------


def _regions(field: Field | None) -> tuple[Region, ...]:
    if field is None:
        return (Region(name="local", share=1.0),)
    items = field.items(min_len=1)
    regions: list[Region] = []
    seen: dict[str, Field] = {}
    for item in items:
        m = item.mapping(("name", "share", "utc_offset", "rtt", "base_url"), required=("name",))
        name_f = m.req("name")
        name = name_f.name()
        if name in seen:
            name_f.fail(f"region {name!r} is declared twice")
        seen[name] = item
        if "share" in m:
            share = _share(m.req("share"))
        elif len(items) == 1:
            share = 1.0
        else:
            item.fail("missing required key 'share' (needed when there are several regions)")
        regions.append(
            Region(
                name=name,
                share=share,
                utc_offset_h=m.opt("utc_offset", lambda f: f.number(low=-12, high=14), 0.0),
                rtt_ms=m.opt("rtt", lambda f: f.duration(max_s=10.0), 0.0) * 1000.0,
                base_url=m.opt("base_url", _url, None),
            )
        )
    total = sum(r.share for r in regions)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        listed = " + ".join(f"{r.share:g}" for r in regions)
        field.fail(f"shares must add up to 1 (100%), got {listed} = {total:.4g}")
    # Within the tolerance (e.g. 33% x 3): normalise so the shares sum to exactly 1.
    return tuple(dataclasses.replace(r, share=r.share / total) for r in regions)


def _share(field: Field) -> float:
    raw = field.raw()
    if field.value.kind == "scalar" and units.is_number(raw):
        return field.number(low=0, high=1, low_open=True)
    share = field.fraction()
    if share <= 0:
        field.fail(f"must be in (0, 1], got {units.describe(raw)}")
    return share


# -- distributions ----------------------------------------------------------------------

_DIST_KEYS = {
    "constant": ("value",),
    "uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "lognormal": ("median", "p90"),
    "empirical": ("trace", "column", "format", "values"),
}


def distribution(field: Field, unit: str, base_dir: Path) -> Distribution:
    """`unit` is 'tokens' (counts: bare numbers allowed) or 'seconds' (durations)."""
    if field.value.kind == "scalar":
        return Constant(_dist_value(field, unit))
    if not field.is_map:
        field.fail(
            f"expected a number or a distribution like {{dist: lognormal, median: ..., p90: ...}}, "
            f"got {field.what()}"
        )
    kind_f = Mapping(field).get("dist")
    if kind_f is None:
        field.fail("missing required key 'dist' (constant, uniform, normal, lognormal, empirical)")
    kind = kind_f.choice(tuple(_DIST_KEYS))
    allowed = ("dist", *_DIST_KEYS[kind])
    required = () if kind == "empirical" else _DIST_KEYS[kind]
    m = field.mapping(allowed, required=required)
    try:
        if kind == "empirical":
            return _empirical(field, m, unit, base_dir)
        values = [_dist_value(m.req(k), unit) for k in _DIST_KEYS[kind]]
        cls: Callable[..., Distribution] = {
            "constant": Constant,
            "uniform": Uniform,
            "normal": Normal,
            "lognormal": LogNormal,
        }[kind]
        return cls(*values)
    except ValueError as exc:
        field.fail(str(exc))


def _dist_value(field: Field, unit: str) -> float:
    if unit == "seconds":
        return field.duration()
    return field.number(low=0)


def _empirical(field: Field, m: Mapping, unit: str, base_dir: Path) -> Distribution:
    if ("values" in m) == ("trace" in m):
        field.fail("an empirical distribution takes either `values: [...]` or `trace: FILE`")
    if "values" in m:
        items = m.req("values").items(min_len=1)
        return Empirical.from_values([_dist_value(f, unit) for f in items])
    if unit == "seconds":
        m.req("trace").fail("a trace holds token counts, not durations")
    trace_f = m.req("trace")
    path = base_dir / trace_f.string().strip()
    column = m.opt("column", lambda f: f.choice(("input", "output")), None)
    if column is None:
        field.fail("missing required key 'column' (input or output)")
    fmt = m.opt("format", lambda f: f.choice(("azure", "mooncake", "burstgpt")), None)
    trace = _read_trace(trace_f, path, fmt)
    try:
        return Empirical.from_trace(trace, f"{column}_tokens")
    except ValueError as exc:
        trace_f.fail(str(exc))


def _read_trace(field: Field, path: Path, fmt: str | None) -> Any:
    from loadkit.workload.traces import read_trace

    if not path.is_file():
        field.fail(f"trace file not found: {path}")
    try:
        return read_trace(path, fmt)
    except (UserError, ValueError, OSError) as exc:
        field.fail(f"cannot read trace: {exc}")


# -- workloads --------------------------------------------------------------------------

_WORKLOAD_KEYS = (
    "name",
    "weight",
    "kind",
    "prompt_tokens",
    "output_tokens",
    "system_prefix_tokens",
    "stream",
    "turns",
    "think_time",
    "history",
    "max_tokens",
    "model",
    "rag",
    "extra_body",
)


def _workloads(field: Field, target: Target, base_dir: Path) -> tuple[Workload, ...]:
    items = field.items(min_len=1)
    out: list[Workload] = []
    seen: set[str] = set()
    for item in items:
        m = item.mapping(_WORKLOAD_KEYS, required=("name",))
        name_f = m.req("name")
        name = name_f.name()
        if name in seen:
            name_f.fail(f"workload {name!r} is declared twice")
        seen.add(name)
        kind = m.opt(
            "kind", lambda f: f.choice(("chat", "completions", "embeddings", "rag")), "chat"
        )
        prompt = m.opt("prompt_tokens", lambda f: _tokens(f, base_dir), None)
        if prompt is None:
            item.fail("missing required key 'prompt_tokens'")
        if kind == "embeddings":
            output: Distribution = m.opt(
                "output_tokens", lambda f: _tokens(f, base_dir), Constant(0)
            )
        else:
            output = m.opt("output_tokens", lambda f: _tokens(f, base_dir), None)
            if output is None:
                item.fail("missing required key 'output_tokens'")
        stream = m.opt("stream", Field.boolean, kind != "embeddings")
        if kind == "embeddings" and stream:
            m.req("stream").fail("embeddings do not stream; remove `stream` or set it to false")
        turns = m.opt("turns", lambda f: _turns(f, base_dir), None)
        if kind == "embeddings" and turns is not None:
            m.req("turns").fail("embeddings are single requests; sessions apply to chat and rag")
        rag = m.opt("rag", lambda f: _rag(f, base_dir), None)
        if kind == "rag" and rag is None:
            item.fail("missing required key 'rag' (embed_tokens, retrieval_delay, context_tokens)")
        if kind != "rag" and rag is not None:
            m.req("rag").fail(f"only for kind: rag (this workload is {kind})")
        workload = Workload(
            name=name,
            weight=m.opt("weight", lambda f: f.number(low=0, low_open=True), 1.0),
            kind=kind,  # type: ignore[arg-type]
            prompt_tokens=prompt,
            output_tokens=output,
            system_prefix_tokens=m.opt(
                "system_prefix_tokens", lambda f: f.integer(low=0, high=10_000_000), 0
            ),
            stream=stream,
            turns=turns,
            think_time_s=m.opt("think_time", lambda f: distribution(f, "seconds", base_dir), None),
            history=m.opt("history", Field.boolean, kind in ("chat", "rag")),
            max_tokens=m.opt("max_tokens", lambda f: f.integer(low=1, high=10_000_000), None),
            model=m.opt("model", lambda f: _workload_model(f, target), None),
            rag=rag,
            extra_body=m.opt("extra_body", extra_body, {}),
        )
        _check_sessions(item, workload)
        out.append(workload)
    return tuple(out)


def _workload_model(field: Field, target: Target) -> str:
    model = field.string().strip()
    if target.kind == "mock" and target.mock_profile:
        served = _mock_models(target.mock_profile, dict(target.mock_overrides))
        if served and model not in served:
            field.fail(
                f"the mock profile {target.mock_profile} serves {', '.join(served)}; "
                f"got {model!r}{hint(model, served)}"
            )
    return model


def _check_sessions(field: Field, workload: Workload) -> None:
    """The session sampler has its own rules (at least one turn, RAG chunk size)."""
    from loadkit.scenario.bridge import session_workload

    try:
        session_workload(workload)
    except ValueError as exc:
        field.fail(str(exc))


def _tokens(field: Field, base_dir: Path) -> Distribution:
    if field.value.kind == "scalar" and isinstance(field.raw(), str):
        field.fail(
            f"expected a token count or a distribution like {{dist: lognormal, median: 900, "
            f"p90: 2700}}, got {units.describe(field.raw())}"
        )
    return distribution(field, "tokens", base_dir)


def _turns(field: Field, base_dir: Path) -> Distribution:
    dist = _tokens(field, base_dir)
    if dist.quantile(1.0) < 0.5:
        field.fail("a session needs at least 1 turn (draws are rounded, at least 1)")
    return dist


def _rag(field: Field, base_dir: Path) -> RagStep:
    m = field.mapping(
        ("embed_tokens", "retrieval_delay", "context_tokens"),
        required=("embed_tokens", "context_tokens"),
    )
    context = _tokens(m.req("context_tokens"), base_dir)
    if context.quantile(0.5) < 4:
        m.req("context_tokens").fail("the retrieved context needs at least 4 tokens")
    return RagStep(
        embed_tokens=_tokens(m.req("embed_tokens"), base_dir),
        retrieval_delay_s=m.opt(
            "retrieval_delay", lambda f: distribution(f, "seconds", base_dir), Constant(0.0)
        ),
        context_tokens=context,
    )


# -- load -------------------------------------------------------------------------------


def _load(field: Field, base_dir: Path) -> tuple[Load, float | None]:
    kind_f = Mapping(field).get("type") if field.is_map else None
    if kind_f is None:
        if not field.is_map:
            field.fail(f"expected a mapping with `type: closed | open | trace`, got {field.what()}")
        field.fail("missing required key 'type' (closed: users, open: arrival rate, trace: replay)")
    kind = kind_f.choice(("closed", "open", "trace"))
    if kind == "closed":
        m = field.mapping(("type", "phases", "spawn_rate", "daily"), required=("phases",))
        phases = _user_phases(m.req("phases"))
        load: Load = ClosedLoad(
            phases=phases,
            spawn_rate=m.opt("spawn_rate", _positive_rate, 0.0),
            daily=m.opt("daily", _daily, None),
        )
        return load, sum(p.duration_s for p in phases)
    if kind == "open":
        m = field.mapping(
            ("type", "phases", "process", "cv", "max_in_flight", "daily"), required=("phases",)
        )
        phases_o = _rate_phases(m.req("phases"))
        process = m.opt("process", lambda f: f.choice(("poisson", "constant", "gamma")), "poisson")
        cv = m.opt("cv", lambda f: f.number(low=0, high=100, low_open=True), None)
        if cv is not None and process != "gamma":
            m.req("cv").fail("only for process: gamma (poisson has cv 1, constant has cv 0)")
        if process == "gamma" and cv is None:
            field.fail("missing required key 'cv' (gamma arrivals need a coefficient of variation)")
        default_cv = {"poisson": 1.0, "constant": 0.0, "gamma": cv or 1.0}[process]
        load = OpenLoad(
            phases=phases_o,
            process=process,  # type: ignore[arg-type]
            cv=default_cv,
            max_in_flight=m.opt("max_in_flight", lambda f: f.integer(low=1, high=1_000_000), 1000),
            daily=m.opt("daily", _daily, None),
        )
        return load, sum(p.duration_s for p in phases_o)
    m = field.mapping(
        ("type", "format", "path", "time_scale", "rate_scale", "window", "daily"),
        required=("format", "path"),
    )
    if "daily" in m:
        m.req("daily").fail(
            "a trace carries its own timing; daily curves apply to closed and open load"
        )
    fmt = m.req("format").choice(("azure", "mooncake", "burstgpt"))
    path_f = m.req("path")
    path = (base_dir / path_f.string().strip()).resolve()
    trace = _read_trace(path_f, path, fmt)
    time_scale = m.opt("time_scale", lambda f: f.number(low=0, high=1e6, low_open=True), 1.0)
    rate_scale = m.opt("rate_scale", lambda f: f.number(low=0, high=1000, low_open=True), 1.0)
    window = m.opt("window", _window, None)
    span = float(trace.t_s[-1]) if len(trace.t_s) else 0.0
    if window is not None:
        if window[0] >= span:
            m.req("window").fail(
                f"starts at {units.fmt_duration(window[0])}, after the trace ends "
                f"({units.fmt_duration(span)})"
            )
        span = min(window[1], span) - window[0]
    load = TraceLoad(
        format=fmt,  # type: ignore[arg-type]
        path=path,
        time_scale=time_scale,
        rate_scale=rate_scale,
        window=window,
    )
    return load, float(max(math.ceil(span / time_scale), 1))


def _positive_rate(field: Field) -> float:
    rate = field.rate()
    if rate <= 0:
        field.fail(f"must be more than 0, got {units.describe(field.raw())}")
    return rate


def _phase_items(field: Field) -> list[Field]:
    items = field.items(min_len=1)
    if len(items) > MAX_PHASES:
        field.fail(
            f"at most {MAX_PHASES:,} phases, got {len(items):,} (for a daily shape use "
            "`daily:`, to replay recorded traffic use a trace)"
        )
    return items


def _user_phases(field: Field) -> tuple[UserPhase, ...]:
    phases: list[UserPhase] = []
    level: int | None = None
    for item in _phase_items(field):
        m = item.mapping(("kind", "users", "for"), required=("kind", "for"))
        kind = m.req("kind").choice(("ramp", "hold", "spike", "step"))
        dur = m.req("for").duration(positive=True)
        users_f = m.get("users")
        if users_f is None:
            if kind != "hold":
                item.fail(f"missing required key 'users' (how many users the {kind} goes to)")
            if level is None:
                item.fail("missing required key 'users' (no earlier phase sets a level to hold)")
            users = level
        else:
            users = users_f.integer(low=0, high=1_000_000)
        phases.append(UserPhase(kind=kind, duration_s=dur, users=users))  # type: ignore[arg-type]
        if kind != "spike":
            level = users
    if max(p.users for p in phases) == 0:
        field.fail("no phase has any users")
    return tuple(phases)


def _rate_phases(field: Field) -> tuple[RatePhase, ...]:
    phases: list[RatePhase] = []
    for item in _phase_items(field):
        m = item.mapping(("rate", "from", "to", "for"), required=("for",))
        dur = m.req("for").duration(positive=True)
        if "rate" in m:
            if "from" in m or "to" in m:
                item.fail("give either `rate` (steady) or `from` and `to` (a ramp), not both")
            start = end = m.req("rate").rate()
        elif "from" in m and "to" in m:
            start, end = m.req("from").rate(), m.req("to").rate()
        else:
            item.fail("missing `rate: 10/s` (steady) or `from: 1/s` and `to: 10/s` (a ramp)")
        phases.append(RatePhase(duration_s=dur, rate_start=start, rate_end=end))
    if all(p.rate_start == 0 and p.rate_end == 0 for p in phases):
        field.fail("every phase has rate 0; nothing would be sent")
    return tuple(phases)


def _window(field: Field) -> tuple[float, float]:
    items = field.items(min_len=2, max_len=2)
    start, end = items[0].duration(), items[1].duration()
    if end <= start:
        items[1].fail(
            f"the window must end after it starts ({units.fmt_duration(start)}), "
            f"got {units.describe(items[1].raw())}"
        )
    return start, end


def _daily(field: Field) -> DailyCurveSpec:
    from loadkit.workload.daily import DailyCurve, named_curve, shape_names

    m = field.mapping(("curve", "hourly", "start_utc_hour"))
    if ("curve" in m) == ("hourly" in m):
        field.fail("give either `curve: <name>` or `hourly: [24 values]`")
    start = m.opt("start_utc_hour", lambda f: f.number(low=0, high=24, high_open=True), 0.0)
    if "curve" in m:
        name = m.req("curve").choice(shape_names())
        return DailyCurveSpec(hourly=named_curve(name).hourly, start_utc_hour=start, name=name)
    hourly_f = m.req("hourly")
    items = hourly_f.items()
    if len(items) != 24:
        hourly_f.fail(f"expected 24 hourly values (local hours 0-23), got {len(items)}")
    values = [f.number(low=0) for f in items]
    try:
        curve = DailyCurve(tuple(values))
    except ValueError as exc:
        hourly_f.fail(str(exc))
    return DailyCurveSpec(hourly=curve.hourly, start_utc_hour=start, name=None)


def _duration(top: Mapping, load: Load, load_duration: float | None) -> float:
    dur_f = top.get("duration")
    if dur_f is None:
        if load_duration is None:  # pragma: no cover - every load kind gives one
            top.field.fail("missing required key 'duration'")
        return load_duration
    duration = dur_f.duration(positive=True)
    if isinstance(load, TraceLoad):
        return duration
    if load_duration is not None and abs(duration - load_duration) > 1e-6:
        dur_f.fail(
            f"{units.fmt_duration(duration)} does not match the load phases, which add up to "
            f"{units.fmt_duration(load_duration)} (fix a phase or drop `duration`)"
        )
    return duration


# -- client -----------------------------------------------------------------------------


def _client(field: Field | None, regions: tuple[str, ...]) -> ClientPolicy:
    if field is None:
        return ClientPolicy()
    m = field.mapping(("timeouts", "retries", "failover", "max_concurrency"))
    return ClientPolicy(
        timeouts=m.opt("timeouts", _timeouts, Timeouts()),
        retries=m.opt("retries", _retries, Retries()),
        failover=m.opt("failover", lambda f: _failover(f, regions), ()),
        max_concurrency=m.opt("max_concurrency", lambda f: f.integer(low=1, high=10_000_000), None),
    )


def _timeouts(field: Field) -> Timeouts:
    m = field.mapping(("connect", "first_token", "between_tokens", "total"))
    d = Timeouts()

    def pos(f: Field) -> float:
        return f.duration(positive=True)

    t = Timeouts(
        connect_s=m.opt("connect", pos, d.connect_s),
        first_token_s=m.opt("first_token", pos, d.first_token_s),
        between_tokens_s=m.opt("between_tokens", pos, d.between_tokens_s),
        total_s=m.opt("total", pos, d.total_s),
    )
    if "total" in m and t.total_s < t.connect_s:
        m.req("total").fail(
            f"is shorter than the connect timeout ({units.fmt_duration(t.connect_s)})"
        )
    return t


def _retries(field: Field) -> Retries:
    m = field.mapping(
        ("max", "backoff_initial", "backoff_max", "jitter", "honour_retry_after", "retry_on_status")
    )
    d = Retries()
    r = Retries(
        max_retries=m.opt("max", lambda f: f.integer(low=0, high=100), d.max_retries),
        backoff_initial_s=m.opt("backoff_initial", Field.duration, d.backoff_initial_s),
        backoff_max_s=m.opt("backoff_max", Field.duration, d.backoff_max_s),
        jitter=m.opt("jitter", Field.fraction, d.jitter),
        honour_retry_after=m.opt("honour_retry_after", Field.boolean, d.honour_retry_after),
        retry_on_status=m.opt("retry_on_status", _statuses, SDK_RETRY_STATUSES),
    )
    if r.backoff_max_s < r.backoff_initial_s:
        (m.get("backoff_max") or m.req("backoff_initial")).fail(
            f"backoff_max ({units.fmt_duration(r.backoff_max_s)}) is shorter than "
            f"backoff_initial ({units.fmt_duration(r.backoff_initial_s)})"
        )
    return r


def _statuses(field: Field) -> tuple[int, ...]:
    out: list[int] = []
    for item in field.items():
        raw = item.raw()
        if isinstance(raw, str) and re.fullmatch(r"[45]xx", raw.strip()):
            base = int(raw.strip()[0]) * 100
            out.extend(range(base, base + 100))
        else:
            if isinstance(raw, str):
                item.fail(
                    "expected a status code like 429 or a class like 5xx, "
                    f"got {units.describe(raw)}"
                )
            out.append(item.integer(low=400, high=599))
    return tuple(sorted(set(out)))


def _failover(field: Field, regions: tuple[str, ...]) -> tuple[str, ...]:
    names: list[str] = []
    for item in field.items():
        name = item.name()
        if name not in regions:
            item.fail(
                f"unknown region {name!r}{hint(name, regions)} (declared: {', '.join(regions)})"
            )
        if name in names:
            item.fail(f"region {name!r} is listed twice")
        names.append(name)
    return tuple(names)


# -- faults -----------------------------------------------------------------------------

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
    field: Field | None, duration_s: float, regions: tuple[str, ...], workloads: list[str]
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
        where = m.opt("where", lambda f: _where(f, regions, workloads), FaultWhere())
        if spec.needs_region and where.region is None:
            item.fail(f"a {kind} needs `where: {{region: <name>}}`")
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


def _where(field: Field, regions: tuple[str, ...], workloads: list[str]) -> FaultWhere:
    m = field.mapping(("region", "model", "workload", "path", "api_key"))
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
    )


# -- slo, pricing, budget ---------------------------------------------------------------


def _slo(field: Field | None) -> Slo:
    if field is None:
        return Slo()
    m = field.mapping(("ttft", "itl", "e2e", "error_rate"))
    return Slo(
        ttft_ms=m.opt("ttft", _thresholds, {}),
        itl_ms=m.opt("itl", _thresholds, {}),
        e2e_ms=m.opt("e2e", _thresholds, {}),
        error_rate=m.opt("error_rate", Field.fraction, None),
    )


def _abort(field: Field | None) -> Abort | None:
    if field is None:
        return None
    m = field.mapping(("error_rate", "ttft", "window", "min_requests"))
    abort = Abort(
        error_rate=m.opt("error_rate", Field.fraction, None),
        ttft_ms=m.opt("ttft", _thresholds, {}),
        window_s=m.opt("window", lambda f: f.duration(positive=True), 30.0),
        min_requests=m.opt("min_requests", lambda f: f.integer(low=1, high=10_000_000), 20),
    )
    if abort.error_rate is None and not abort.ttft_ms:
        field.fail("an abort needs `error_rate` and/or `ttft: {p95: 10s}`")
    return abort


def _thresholds(field: Field) -> dict[str, float]:
    if not field.is_map:
        field.fail(f"expected percentile thresholds like {{p95: 800ms}}, got {field.what()}")
    m = Mapping(field)
    out: dict[str, float] = {}
    for key in m.data:
        if not _PERCENTILE.fullmatch(key) or not 0 < float(key[1:]) <= 100:
            raise ScenarioError(
                m.key_locs.get(key, field.loc),
                m.sub_path(key),
                "expected a percentile like p50, p95, p99 or p99.9",
            )
        sub = m.get(key)
        if sub is None:
            continue
        out[key] = sub.duration(positive=True) * 1000.0
    return out


def _pricing(field: Field | None, target: Target, regions: tuple[str, ...]) -> Pricing | None:
    if field is None:
        price = lookup_price(target.model)
        return None if price is None else Pricing(model=target.model, price=price)
    m = field.mapping(("model", "input", "cached_input", "output", "regional_uplift"))
    model = m.opt("model", lambda f: f.string().strip(), target.model)

    def usd(f: Field) -> float:
        return f.number(low=0, high=10_000)

    overrides = {
        "input_per_1m": m.opt("input", usd, None),
        "cached_input_per_1m": m.opt("cached_input", usd, None),
        "output_per_1m": m.opt("output", usd, None),
    }
    price = lookup_price(model)
    if price is None:
        if overrides["input_per_1m"] is None or overrides["output_per_1m"] is None:
            where = m.get("model") or field
            known = tuple(price_table())
            where.fail(
                f"model {model!r} is not in the price table; give `input` and `output` "
                f"(USD per 1M tokens) to price it{hint(model, known)}"
            )
        price = Price(model=model, input_per_1m=0.0, output_per_1m=0.0, source="scenario")
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes:
        price = dataclasses.replace(price, source=price.source or "scenario", **changes)
    uplift = m.opt("regional_uplift", lambda f: _uplift(f, regions), {})
    return Pricing(model=model, price=price, regional_uplift=uplift)


def _uplift(field: Field, regions: tuple[str, ...]) -> dict[str, float]:
    if not field.is_map:
        field.fail(f"expected a mapping of region to factor (1.1 or +10%), got {field.what()}")
    m = Mapping(field)
    out: dict[str, float] = {}
    for key in m.present_keys():
        sub = m.req(key)
        if key not in regions:
            raise ScenarioError(
                m.key_locs.get(key, field.loc),
                sub.path,
                f"unknown region{hint(key, regions)} (declared: {', '.join(regions)})",
            )
        raw = sub.raw()
        if (
            isinstance(raw, str)
            and raw.strip().startswith(("+", "-"))
            and raw.strip().endswith("%")
        ):
            try:
                pct = float(raw.strip()[:-1])
            except ValueError:
                sub.fail(
                    f"expected a factor like 1.1 or a change like +10%, got {units.describe(raw)}"
                )
            factor = 1.0 + pct / 100.0
            if not math.isfinite(factor) or factor <= 0:
                sub.fail(f"must leave a positive price, got {units.describe(raw)}")
        elif isinstance(raw, str):
            sub.fail(f"expected a factor like 1.1 or a change like +10%, got {units.describe(raw)}")
        else:
            factor = sub.number(low=0, high=100, low_open=True)
        out[key] = factor
    return out


def _budget(field: Field | None) -> Budget:
    if field is None:
        return Budget()
    m = field.mapping(("max_usd", "max_requests"))
    return Budget(
        max_usd=m.opt("max_usd", lambda f: f.number(low=0, low_open=True, high=1e9), None),
        max_requests=m.opt("max_requests", lambda f: f.integer(low=1, high=10**12), None),
    )
