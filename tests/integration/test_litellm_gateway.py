"""A real LiteLLM proxy in front of two mock regions: the gateway tier's ground truth.

What LiteLLM does here is what the gateway drills build on: it spreads requests over its
deployments, names the one that answered in `x-litellm-model-id`, and passes the upstream's
own headers on with an `llm_provider-` prefix.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import openai
import pytest

from tests.chaos_support import region_urls
from tests.conftest import FAST_MOCK, StartMock
from tests.litellm_gateway import Deployment, litellm_gateway, missing_reason

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=missing_reason() or "")


def test_litellm_spreads_over_both_regions_and_names_the_one_that_answered(
    start_mock: StartMock, tmp_path: Path
) -> None:
    mock = start_mock({**FAST_MOCK, "regions": {"us": {}, "eu": {}}})
    urls = region_urls(mock)
    deployments = [Deployment(name, urls[name] + "/v1") for name in ("us", "eu")]
    with litellm_gateway(tmp_path, deployments, {"routing_strategy": "simple-shuffle"}) as gw:
        client = openai.OpenAI(base_url=gw.url, api_key=gw.key, max_retries=0)
        served: Counter[str] = Counter()
        for i in range(16):
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"question {i}"}],
                max_tokens=4,
            )
            answer = raw.parse()
            assert answer.choices[0].message.content
            model_id = raw.headers["x-litellm-model-id"]
            # the upstream's own header, passed on under LiteLLM's prefix, agrees
            assert raw.headers["llm_provider-x-mock-region"] == model_id
            served[model_id] += 1
    assert set(served) == {"us", "eu"}, served
