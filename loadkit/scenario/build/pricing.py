"""`pricing:` (price table lookup, overrides, regional uplift) and `budget:` (spend caps)."""

from __future__ import annotations

import dataclasses
import math

from loadkit.cost import Price, lookup_price, price_table
from loadkit.scenario import units
from loadkit.scenario.build.helpers import _mapping_of
from loadkit.scenario.errors import ScenarioError
from loadkit.scenario.fields import Field, hint
from loadkit.scenario.model import Budget, Pricing, Target


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
    m = _mapping_of(field, "a mapping of region to factor (1.1 or +10%)")
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
