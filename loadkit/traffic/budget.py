"""The budget guard: stop sending once the scenario's money or request budget is spent.

Spend is the sum of the records' `cost_usd` (tokens x pricing, failed attempts included).
A logical request is admitted only while both limits hold, so `max_requests` is never
exceeded; requests already in flight finish and are paid for, so `max_usd` can be passed
by at most what those in-flight requests cost (said in the stop message).

In Locust's multi-process mode each worker guards an equal share of the budget (its index
decides who gets the remainder of `max_requests`), and the master adds up what the workers
ship to report the total: no request needs a round trip to the master before it is sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """`None` means unlimited."""

    max_usd: float | None = None
    max_requests: int | None = None

    @property
    def limited(self) -> bool:
        return self.max_usd is not None or self.max_requests is not None

    def share(self, index: int, count: int) -> BudgetLimits:
        """This worker's part of the budget when `count` workers share it."""
        if count <= 1:
            return self
        usd = None if self.max_usd is None else self.max_usd / count
        req = None
        if self.max_requests is not None:
            base, extra = divmod(self.max_requests, count)
            req = base + (1 if index < extra else 0)
        return BudgetLimits(usd, req)


class BudgetGuard:
    """Admits logical requests and adds up their cost; single-threaded (greenlets) use."""

    def __init__(self, limits: BudgetLimits):
        self.limits = limits
        self.requests = 0
        self.spent_usd = 0.0
        self.reason = ""

    def try_start(self) -> bool:
        """Reserve one logical request; False once a limit is reached (and stays False)."""
        if self.reason:
            return False
        lim = self.limits
        if lim.max_requests is not None and self.requests >= lim.max_requests:
            self.reason = f"request budget reached ({self.requests} of {lim.max_requests})"
            return False
        if lim.max_usd is not None and self.spent_usd >= lim.max_usd:
            self.reason = f"cost budget reached (${self.spent_usd:.4f} of ${lim.max_usd:g})"
            return False
        self.requests += 1
        return True

    def add_cost(self, usd: float) -> None:
        if usd and not math.isnan(usd):
            self.spent_usd += usd
        lim = self.limits
        if not self.reason and lim.max_usd is not None and self.spent_usd >= lim.max_usd:
            self.reason = f"cost budget reached (${self.spent_usd:.4f} of ${lim.max_usd:g})"

    @property
    def exhausted(self) -> bool:
        """True once a limit is reached; `reason` says which."""
        if self.reason:
            return True
        lim = self.limits
        if lim.max_requests is not None and self.requests >= lim.max_requests:
            self.reason = f"request budget reached ({self.requests} of {lim.max_requests})"
        return bool(self.reason)
