"""The validated scenario: frozen dataclasses the traffic, chaos and report layers consume.

Field names are a contract with the rest of loadkit. Times are seconds (`*_s`) or
milliseconds (`*_ms`), rates are per second, shares and rates of faults are fractions.
Mappings are plain dicts built once by the loader; treat them as read-only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from loadkit.apis.base import Endpoint, HttpTemplate
from loadkit.chaos import kinds as fault_kinds
from loadkit.cost import Price
from loadkit.workload.distributions import Distribution

TargetKind = Literal["mock", "http"]
WorkloadKind = Literal["chat", "completions", "embeddings", "rag"]
PhaseKind = Literal["ramp", "hold", "spike", "step"]
ArrivalProcess = Literal["poisson", "constant", "gamma"]

FAULT_KINDS: tuple[str, ...] = fault_kinds.NAMES  # the registry: loadkit/chaos/kinds.py

# The official OpenAI Python SDK retries these (408, 409, 429 and every 5xx).
SDK_RETRY_STATUSES: tuple[int, ...] = (408, 409, 429, *range(500, 600))


# Response headers that name the upstream that answered, first match wins; each is also
# read under LiteLLM's `llm_provider-` prefix (how it passes an upstream's headers on).
DEFAULT_SERVED_BY_HEADERS: tuple[str, ...] = (
    "x-litellm-model-id",  # LiteLLM: the deployment's model_info.id
    "x-litellm-model-api-base",  # LiteLLM: the deployment's api_base
    "x-mock-region",  # loadkit's mock: the region that answered
    "x-ms-region",  # Azure OpenAI: the region that answered
)


@dataclass(frozen=True)
class Upstream:
    """A service behind the target (a gateway's deployment): loadkit listens on `listen`
    (the address the gateway's config points at) and forwards to `url`, so faults land
    behind the gateway and every request's serving upstream is known."""

    name: str
    url: str
    listen: int
    source: str = ""  # `file:line: key.path` of `listen`, for errors found at run time


@dataclass(frozen=True)
class Target:
    """Where requests go: the bundled mock (a profile) or an OpenAI-compatible base URL."""

    kind: TargetKind
    model: str
    mock_profile: str | None = None
    mock_overrides: Mapping[str, object] = field(default_factory=dict)
    base_url: str | None = None
    api_key_env: str | None = None  # the NAME of an environment variable, never a key
    headers: Mapping[str, str] = field(default_factory=dict)  # values may hold ${ENV}
    region_endpoints: Mapping[str, str] = field(default_factory=dict)  # region -> base URL
    tokenizer: str | None = None  # a local tokenizer.json, for a service without usage
    upstreams: tuple[Upstream, ...] = ()
    served_by_headers: tuple[str, ...] = DEFAULT_SERVED_BY_HEADERS
    record_headers: tuple[str, ...] = ()  # kept as h_<name> columns of requests.csv
    api: str = "openai"  # the provider API the target speaks (loadkit.apis)
    api_version: str = ""  # azure: api-version; anthropic: anthropic-version ("" = default)
    deployment: str = ""  # azure: the deployment in the path ("" = the model)
    template: HttpTemplate | None = None  # api: http: the request template, response mapping


@dataclass(frozen=True)
class NamedEndpoint:
    """A service of `endpoints:`: its API entry's endpoint and its own price."""

    endpoint: Endpoint  # base_url "" = served by the bundled mock (a listener of its own)
    price: Price | None = None


@dataclass(frozen=True)
class Region:
    """Where users are: their share of traffic, local time and network distance."""

    name: str
    share: float
    utc_offset_h: float = 0.0
    rtt_ms: float = 0.0
    base_url: str | None = None
    endpoint: str | None = None  # a named endpoint this region's calls go to


@dataclass(frozen=True)
class RagStep:
    """A RAG flow: embed the query, wait for retrieval, then chat with the context added."""

    embed_tokens: Distribution
    retrieval_delay_s: Distribution
    context_tokens: Distribution


@dataclass(frozen=True)
class Workload:
    """A persona: what it asks, how long the answers are, how its sessions unfold."""

    name: str
    weight: float
    kind: WorkloadKind
    prompt_tokens: Distribution
    output_tokens: Distribution
    system_prefix_tokens: int = 0
    stream: bool = True
    turns: Distribution | None = None  # None: one turn
    think_time_s: Distribution | None = None  # None: no pause between turns
    history: bool = True
    max_tokens: int | None = None
    model: str | None = None
    rag: RagStep | None = None
    # fields merged into every request body (ignore_eos, min_tokens, temperature, ...)
    extra_body: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class DailyCurveSpec:
    """A 24-hour shape (mean 1), local time; the day is compressed into the run."""

    hourly: tuple[float, ...]
    start_utc_hour: float = 0.0
    name: str | None = None  # the named shape it came from, if any


@dataclass(frozen=True)
class UserPhase:
    """Closed loop: ramp (linear to `users`), hold, spike (jump, then back), step (jump)."""

    kind: PhaseKind
    duration_s: float
    users: int


@dataclass(frozen=True)
class ClosedLoad:
    phases: tuple[UserPhase, ...]
    spawn_rate: float  # users started per second during ramps and steps
    daily: DailyCurveSpec | None = None


@dataclass(frozen=True)
class RatePhase:
    """Open loop: session arrivals per second, linear from `rate_start` to `rate_end`."""

    duration_s: float
    rate_start: float
    rate_end: float


# Schedule lag p95 past which an open load was not kept up with (`load.max_schedule_lag`);
# `loadkit.analysis.offered` judges it.
DEFAULT_MAX_SCHEDULE_LAG_S = 1.0


@dataclass(frozen=True)
class OpenLoad:
    phases: tuple[RatePhase, ...]
    process: ArrivalProcess = "poisson"
    cv: float = 1.0  # coefficient of variation of inter-arrival times (gamma)
    max_in_flight: int = 1000
    # schedule lag p95 past which the service did not keep up with the planned load
    max_schedule_lag_s: float = DEFAULT_MAX_SCHEDULE_LAG_S
    daily: DailyCurveSpec | None = None


@dataclass(frozen=True)
class TraceLoad:
    format: str  # a name in loadkit.workload.traces.FORMATS (the builder checks it)
    path: Path  # resolved relative to the scenario file
    time_scale: float = 1.0  # 2.0 replays twice as fast
    rate_scale: float = 1.0  # 0.5 thins to half the requests, 2.0 doubles them
    window: tuple[float, float] | None = None  # seconds of the original trace
    max_schedule_lag_s: float = DEFAULT_MAX_SCHEDULE_LAG_S  # as OpenLoad's
    daily: DailyCurveSpec | None = None  # always None: a trace carries its own timing


Load = ClosedLoad | OpenLoad | TraceLoad


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 5.0
    first_token_s: float = 600.0
    between_tokens_s: float = 600.0
    total_s: float = 600.0


@dataclass(frozen=True)
class Retries:
    max_retries: int = 2
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 8.0
    jitter: float = 0.25
    honour_retry_after: bool = True
    retry_on_status: tuple[int, ...] = SDK_RETRY_STATUSES


@dataclass(frozen=True)
class ClientPolicy:
    """Defaults follow the official OpenAI Python SDK (see docs/scenarios.md)."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    retries: Retries = field(default_factory=Retries)
    failover: tuple[str, ...] = ()  # region names, tried in order after the user's own
    max_concurrency: int | None = None


@dataclass(frozen=True)
class FaultWhere:
    """Which requests a fault hits; None matches everything."""

    region: str | None = None
    model: str | None = None
    workload: str | None = None
    path: str | None = None
    api_key: str | None = None  # the name of the api-key env var, never a key
    upstream: str | None = None  # a target.upstreams name: the fault acts behind the target


@dataclass(frozen=True)
class Fault:
    id: str
    at_s: float
    for_s: float
    kind: str
    rate: float = 1.0  # fraction of matching requests hit
    where: FaultWhere = field(default_factory=FaultWhere)
    params: Mapping[str, object] = field(default_factory=dict)

    @property
    def end_s(self) -> float:
        return self.at_s + self.for_s


@dataclass(frozen=True)
class Slo:
    """Percentile thresholds in ms (`{"p95": 800.0}`) and a maximum error rate (fraction)."""

    ttft_ms: Mapping[str, float] = field(default_factory=dict)
    itl_ms: Mapping[str, float] = field(default_factory=dict)
    e2e_ms: Mapping[str, float] = field(default_factory=dict)
    error_rate: float | None = None


@dataclass(frozen=True)
class Abort:
    """A drill's safety net: stop the run when the last `window_s` breaks a limit.

    `error_rate` is the share of failed attempts; `ttft_ms` maps percentiles to limits
    (`{"p95": 10000.0}`); a window with fewer than `min_requests` attempts never aborts.
    """

    error_rate: float | None = None
    ttft_ms: Mapping[str, float] = field(default_factory=dict)
    window_s: float = 30.0
    min_requests: int = 20


@dataclass(frozen=True)
class Pricing:
    model: str
    price: Price
    regional_uplift: Mapping[str, float] = field(default_factory=dict)  # region -> factor

    def price_for(self, region: str) -> Price:
        """The price a request from `region` pays (its uplift applied)."""
        factor = self.regional_uplift.get(region, 1.0)
        return self.price if factor == 1.0 else self.price.scaled(factor)


@dataclass(frozen=True)
class Budget:
    max_usd: float | None = None
    max_requests: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    seed: int
    duration_s: float
    description: str
    target: Target
    regions: tuple[Region, ...]
    workloads: tuple[Workload, ...]
    load: Load
    client: ClientPolicy
    faults: tuple[Fault, ...]
    slo: Slo
    pricing: Pricing | None
    budget: Budget
    source_path: Path | None = None
    abort: Abort | None = None  # stop conditions of a drill (None: run to the end)
    # cold: prompts carry a per-run salt so a rerun is not served from the server's cache;
    # warm: no salt (a rerun with the same seed sends the same prompts)
    prompt_cache: Literal["cold", "warm"] = "cold"
    endpoints: Mapping[str, NamedEndpoint] = field(default_factory=dict)

    def route_endpoint(self, route: str, base_url: str) -> Endpoint:
        """What a call routed to `route` (a region or a named endpoint) speaks to, at
        `base_url` (the run's URL for it: the mock's, the chaos proxy's or the scenario's)."""
        named = self.endpoints.get(route)
        if named is None and route in {r.name for r in self.regions}:
            ref = self.region(route).endpoint
            named = self.endpoints.get(ref) if ref else None
        if named is not None:
            return dataclasses.replace(named.endpoint, base_url=base_url)
        t = self.target
        return Endpoint(
            name="",  # the target itself
            base_url=base_url,
            model="",  # the target's routes send each call's own model
            api=t.api,
            deployment=t.deployment,
            api_version=t.api_version,
            key_env=t.api_key_env if t.kind == "http" else None,
            headers=t.headers,
            template=t.template,
        )

    def route_price(self, route: str) -> Price | None:
        """A named endpoint's own price (None: the scenario's pricing applies)."""
        named = self.endpoints.get(route)
        if named is None and route in {r.name for r in self.regions}:
            ref = self.region(route).endpoint
            named = self.endpoints.get(ref) if ref else None
        return None if named is None else named.price

    def region(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(name)

    def workload(self, name: str) -> Workload:
        for workload in self.workloads:
            if workload.name == name:
                return workload
        raise KeyError(name)
