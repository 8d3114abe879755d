"""The run context the client layer builds its users from: endpoints, policy, record sink.

Runtime state of one load-generator process, filled in at Locust's init and test_start
(`run_t0`, `sink`, `worker`); `admit()` is the budget guard every logical request asks first.
Kept free of Locust imports so anything can build one (the locustfile, the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadkit.apis.base import Endpoint
from loadkit.cost import lookup_price
from loadkit.traffic.budget import BudgetGuard, BudgetLimits
from loadkit.workload.sizing import Sizing


@dataclass
class RunContext:
    """What the client layer needs to build its users: endpoints, policy, the record sink.

    Runtime state, filled in at Locust's init and test_start (`run_t0`, `sink`, `worker`).
    """

    scenario: Any
    endpoints: dict[str, str]
    headers: dict[str, str]
    run_id: str
    seed: int
    rtt_ms: dict[str, float]
    environment: Any = None
    worker: str = "local"
    run_t0: float = 0.0
    sink: Any = None
    guard: BudgetGuard = field(default_factory=lambda: BudgetGuard(BudgetLimits()))
    stopping: bool = False
    sizing: Sizing = field(default_factory=Sizing)  # target tokens -> synthesis units
    prompt_salt: str = ""  # written into each session's first user message (workload.salt)
    # route -> what it speaks (API, model), its resolved key and headers (`with_routes`)
    routes: dict[str, Endpoint] = field(default_factory=dict)
    keys: dict[str, str | None] = field(default_factory=dict)
    endpoint_headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def with_routes(self) -> RunContext:
        """Fill `routes`, `keys` and `endpoint_headers` from the scenario (keys and `${ENV}`
        header values read from this process's environment)."""
        from loadkit.traffic.config import api_key, resolve_headers

        for name, url in self.endpoints.items():
            ep = self.scenario.route_endpoint(name, url)
            self.routes[name] = ep
            self.keys[name] = api_key(ep.key_env)
            self.endpoint_headers[name] = resolve_headers(ep.headers)
        return self

    @property
    def policy(self) -> Any:
        return self.scenario.client

    def price_for(self, route: str, model: str = "") -> Any:
        """The price of a call to `model` through `route`: a named endpoint's own, else the
        scenario's pricing for the region; a call to another model than the priced one (a
        RAG turn's embeddings) at that model's shipped price, with the region's uplift."""
        own = self.scenario.route_price(route)
        if own is not None:
            return own
        pricing = self.scenario.pricing
        if pricing is None:
            return None
        if model and model != pricing.model:
            other = lookup_price(model)
            if other is not None:
                factor = pricing.regional_uplift.get(route, 1.0)
                return other if factor == 1.0 else other.scaled(factor)
        return pricing.price_for(route)

    def admit(self) -> bool:
        """Ask before each logical request: False once the budget is spent or the run stops."""
        return not self.stopping and self.guard.try_start()

    def record(self, rec: Any) -> None:
        self.sink(rec)
