"""The run context the client layer builds its users from: endpoints, policy, record sink.

Runtime state of one load-generator process, filled in at Locust's init and test_start
(`run_t0`, `sink`, `worker`); `admit()` is the budget guard every logical request asks first.
Kept free of Locust imports so anything can build one (the locustfile, the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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

    @property
    def policy(self) -> Any:
        return self.scenario.client

    def price_for(self, region: str) -> Any:
        pricing = self.scenario.pricing
        return None if pricing is None else pricing.price_for(region)

    def admit(self) -> bool:
        """Ask before each logical request: False once the budget is spent or the run stops."""
        return not self.stopping and self.guard.try_start()

    def record(self, rec: Any) -> None:
        self.sink(rec)
