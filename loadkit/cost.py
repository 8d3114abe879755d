"""What a request costs: the shipped price table and the one cost formula.

Token counts follow the OpenAI usage object: `prompt_tokens` is the whole prompt and
INCLUDES the cached part (`prompt_tokens_details.cached_tokens`). So a request costs

    (prompt_tokens - cached_tokens) x input price
  + cached_tokens                   x cached-input price
  + completion_tokens               x output price

with prices in USD per 1M tokens. A model without a cached-input price bills cached tokens
at the input price. Cached tokens above the prompt count (a server bug) are clipped to it.
Failed attempts cost what they consumed; the caller adds up retries.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources

import numpy as np

from loadkit.errors import UserError

PER_TOKEN = 1e-6  # prices are per 1M tokens


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens for one model (or deployment)."""

    model: str
    input_per_1m: float
    output_per_1m: float
    cached_input_per_1m: float | None = None
    provider: str = ""
    cache_write_per_1m: float | None = None  # prompt tokens written to the cache (Anthropic)
    source: str = ""
    checked: str = ""

    @property
    def cached_rate_per_1m(self) -> float:
        """What a cached prompt token costs (the input price when there is no discount)."""
        return self.input_per_1m if self.cached_input_per_1m is None else self.cached_input_per_1m

    @property
    def cache_write_rate_per_1m(self) -> float:
        """What a prompt token written to the cache costs (the input price when unpriced)."""
        return self.input_per_1m if self.cache_write_per_1m is None else self.cache_write_per_1m

    def scaled(self, factor: float) -> Price:
        """Every rate times `factor` (a regional uplift such as 1.1)."""
        cached = None if self.cached_input_per_1m is None else self.cached_input_per_1m * factor
        write = None if self.cache_write_per_1m is None else self.cache_write_per_1m * factor
        return replace(
            self,
            input_per_1m=self.input_per_1m * factor,
            output_per_1m=self.output_per_1m * factor,
            cached_input_per_1m=cached,
            cache_write_per_1m=write,
        )


def cost_usd(
    price: Price,
    prompt_tokens: int,
    cached_tokens: int,
    completion_tokens: int,
    cache_write_tokens: int = 0,
) -> float:
    """USD for one attempt; `prompt_tokens` includes `cached_tokens` and `cache_write_tokens`
    (OpenAI usage semantics; Anthropic's usage is normalised to it by loadkit.apis)."""
    prompt = max(int(prompt_tokens), 0)
    cached = min(max(int(cached_tokens), 0), prompt)
    written = min(max(int(cache_write_tokens), 0), prompt - cached)
    completion = max(int(completion_tokens), 0)
    return (
        (prompt - cached - written) * price.input_per_1m
        + cached * price.cached_rate_per_1m
        + written * price.cache_write_rate_per_1m
        + completion * price.output_per_1m
    ) * PER_TOKEN


def cost_usd_array(
    price: Price,
    prompt_tokens: np.ndarray,
    cached_tokens: np.ndarray,
    completion_tokens: np.ndarray,
) -> np.ndarray:
    """`cost_usd` over arrays of token counts (analysis of many records at once)."""
    prompt = np.clip(np.asarray(prompt_tokens, dtype=np.float64), 0, None)
    cached = np.clip(np.asarray(cached_tokens, dtype=np.float64), 0, None)
    cached = np.minimum(cached, prompt)
    completion = np.clip(np.asarray(completion_tokens, dtype=np.float64), 0, None)
    return (
        (prompt - cached) * price.input_per_1m
        + cached * price.cached_rate_per_1m
        + completion * price.output_per_1m
    ) * PER_TOKEN


@cache
def price_table() -> dict[str, Price]:
    """The shipped table (`loadkit/data/prices.csv`), keyed by model name."""
    text = resources.files("loadkit").joinpath("data/prices.csv").read_text(encoding="utf-8")
    return parse_price_table(text, "prices.csv")


def parse_price_table(text: str, name: str) -> dict[str, Price]:
    """Rows of `model,provider,input_per_1m,cached_input_per_1m,output_per_1m,source,checked`
    (and optionally `cache_write_per_1m`)."""
    table: dict[str, Price] = {}
    reader = csv.DictReader(io.StringIO(text))
    needed = {"model", "input_per_1m", "output_per_1m"}
    missing = needed - set(reader.fieldnames or ())
    if missing:
        raise UserError(f"{name}:1: missing column(s) {', '.join(sorted(missing))}")
    for row in reader:
        line = reader.line_num
        model = (row.get("model") or "").strip()
        if not model:
            raise UserError(f"{name}:{line}: model: must not be empty")
        if model in table:
            raise UserError(f"{name}:{line}: model: {model!r} is listed twice")
        table[model] = Price(
            model=model,
            input_per_1m=_required(
                _rate(row, "input_per_1m", name, line), "input_per_1m", name, line
            ),
            output_per_1m=_required(
                _rate(row, "output_per_1m", name, line), "output_per_1m", name, line
            ),
            cached_input_per_1m=_rate(row, "cached_input_per_1m", name, line, optional=True),
            cache_write_per_1m=_rate(row, "cache_write_per_1m", name, line, optional=True),
            provider=(row.get("provider") or "").strip(),
            source=(row.get("source") or "").strip(),
            checked=(row.get("checked") or "").strip(),
        )
    return table


def _required(value: float | None, col: str, name: str, line: int) -> float:
    if value is None:
        raise UserError(f"{name}:{line}: {col}: must not be empty")
    return value


def _rate(
    row: dict[str, str], col: str, name: str, line: int, optional: bool = True
) -> float | None:
    raw = (row.get(col) or "").strip()
    if not raw and optional:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"{name}:{line}: {col}: expected a number, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise UserError(f"{name}:{line}: {col}: must be >= 0, got {raw!r}")
    return value


def lookup_price(model: str) -> Price | None:
    """The shipped price of `model`, or None when the table does not list it."""
    return price_table().get(model)
