"""Cost of a request, the shipped price table, and a cross-check against LiteLLM's prices."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from loadkit.cost import (
    Price,
    cost_usd,
    cost_usd_array,
    lookup_price,
    parse_price_table,
    price_table,
)
from loadkit.errors import UserError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
LITELLM = SHARED / "pricing" / "llm_prices_litellm_subset.csv"

P = Price(model="m", input_per_1m=2.0, output_per_1m=8.0, cached_input_per_1m=0.5)


def test_cost_formula_splits_cached_from_prompt() -> None:
    # 1,000 prompt tokens of which 400 cached, 200 completion tokens:
    # 600 x $2 + 400 x $0.5 + 200 x $8 per 1M = (1200 + 200 + 1600) / 1e6
    assert cost_usd(P, 1000, 400, 200) == pytest.approx(3000 / 1e6)


def test_cached_tokens_cost_input_price_without_a_cache_discount() -> None:
    p = Price(model="m", input_per_1m=1.0, output_per_1m=1.0)
    assert cost_usd(p, 1000, 1000, 0) == pytest.approx(cost_usd(p, 1000, 0, 0))


def test_cached_above_prompt_is_clipped_and_negatives_are_zero() -> None:
    assert cost_usd(P, 100, 500, 0) == pytest.approx(100 * 0.5 / 1e6)
    assert cost_usd(P, -5, -5, -5) == 0.0


def test_a_failed_attempt_with_no_output_costs_its_prompt() -> None:
    assert cost_usd(P, 1000, 0, 0) == pytest.approx(1000 * 2.0 / 1e6)


def test_vectorised_cost_equals_the_scalar_one() -> None:
    rng = np.random.default_rng(1)
    prompt = rng.integers(0, 10_000, 500)
    cached = rng.integers(0, 12_000, 500)
    out = rng.integers(0, 2_000, 500)
    vec = cost_usd_array(P, prompt, cached, out)
    scalar = [
        cost_usd(P, int(a), int(b), int(c)) for a, b, c in zip(prompt, cached, out, strict=True)
    ]
    np.testing.assert_allclose(vec, scalar, rtol=1e-12)


def test_regional_uplift_scales_every_rate() -> None:
    p = P.scaled(1.1)
    assert (p.input_per_1m, p.cached_input_per_1m, p.output_per_1m) == pytest.approx(
        (2.2, 0.55, 8.8)
    )


def test_shipped_table_rows_have_sources_and_dates() -> None:
    table = price_table()
    assert len(table) >= 30
    providers = {p.provider for p in table.values()}
    for needed in ("openai", "anthropic", "google", "azure-openai", "aws-bedrock", "together"):
        assert needed in providers
    for p in table.values():
        assert p.source.startswith("https://"), p.model
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.checked), p.model
        assert p.input_per_1m >= 0 and p.output_per_1m >= 0
        if p.cached_input_per_1m is not None:
            assert p.cached_input_per_1m <= p.input_per_1m, p.model
    assert lookup_price("gpt-4o-mini") is not None
    assert lookup_price("no-such-model") is None


def test_bad_price_table_is_a_user_error_with_file_and_line() -> None:
    text = "model,input_per_1m,output_per_1m\nok,1,2\nbad,abc,2\n"
    with pytest.raises(UserError, match=r"^t.csv:3: input_per_1m: expected a number"):
        parse_price_table(text, "t.csv")
    with pytest.raises(UserError, match="listed twice"):
        parse_price_table("model,input_per_1m,output_per_1m\na,1,1\na,1,1\n", "t.csv")


# Our rows named differently from LiteLLM's keys for the same deployment.
ALIASES = {
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "bedrock/claude-sonnet-4-5": "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "bedrock/claude-sonnet-4-5-regional": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "bedrock/llama-3-3-70b-instruct": "meta.llama3-3-70b-instruct-v1:0",
    "bedrock/llama-3-1-8b-instruct": "meta.llama3-1-8b-instruct-v1:0",
    "together/llama-3.3-70b-instruct-turbo": "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "fireworks/llama-v3p1-70b-instruct": (
        "fireworks_ai/accounts/fireworks/models/llama-v3p1-70b-instruct"
    ),
    "azure/gpt-4o-datazone": "azure/us/gpt-4o-2024-08-06",
    "azure/gpt-4o-mini": "azure/gpt-4o-mini-2024-07-18",
    "azure/gpt-4o-mini-datazone": "azure/us/gpt-4o-mini-2024-07-18",
    "gemini-2.0-flash": "vertex_ai/gemini-2.0-flash",
}

# Disagreements we know about, each with the reason; a new one fails the test.
KNOWN_DIFFERENCES = {
    # Our row is the Gemini Developer API price (ai.google.dev); LiteLLM's key is Vertex AI,
    # which lists 0.15 / 0.60 for the same model.
    "gemini-2.0-flash",
    # together.ai/pricing listed $0.88 per 1M in and out for Llama 3.3 70B Instruct Turbo;
    # LiteLLM's subset carries 1.04 (an older or different-tier figure).
    "together/llama-3.3-70b-instruct-turbo",
}


def _litellm_rows() -> dict[str, dict[str, str]]:
    with LITELLM.open(newline="", encoding="utf-8") as fh:
        return {row["model_key"]: row for row in csv.DictReader(fh)}


def _per_1m(raw: str) -> float | None:
    return None if raw.strip() == "" else round(float(raw) * 1e6, 6)


def test_prices_agree_with_litellm_where_both_name_the_model() -> None:
    if not LITELLM.is_file():
        pytest.skip(f"shared pricing data not present ({LITELLM.name}); run inside the workspace")
    theirs = _litellm_rows()
    compared, differences = [], {}
    for model, price in price_table().items():
        key = ALIASES.get(model, model)
        if key not in theirs:
            continue
        row = theirs[key]
        pairs = {
            "input": (price.input_per_1m, _per_1m(row["input_cost_per_token"])),
            "cached": (price.cached_input_per_1m, _per_1m(row["cache_read_input_token_cost"])),
            "output": (price.output_per_1m, _per_1m(row["output_cost_per_token"])),
        }
        compared.append(model)
        bad = {
            k: v
            for k, v in pairs.items()
            if v[0] is not None and v[1] is not None and abs(v[0] - v[1]) > 1e-9
        }
        if bad:
            differences[model] = bad
    report = "\n".join(f"  {m} ({ALIASES.get(m, m)}): {d}" for m, d in differences.items())
    print(f"compared {len(compared)} models with LiteLLM; differences:\n{report or '  none'}")
    assert len(compared) >= 15
    assert set(differences) == KNOWN_DIFFERENCES, report
