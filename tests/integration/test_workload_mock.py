"""Synthetic prompts against the real mock provider (subprocess, official openai SDK).

The mock counts prompts with the same estimate the synthesiser writes to, so the planned and
the reported prompt tokens agree exactly, and a workload's shared system prefix hits the
mock's prefix cache (128-token blocks, prompts of 1,024+ tokens, as OpenAI prompt caching).
"""

from __future__ import annotations

import numpy as np
import openai

from loadkit.serving.launch import ServerProcess
from loadkit.workload.distributions import Constant, Uniform
from loadkit.workload.prompts import (
    Conversation,
    PromptSynth,
    messages_tokens,
    system_prefix,
    text_of_tokens,
)
from loadkit.workload.sessions import Workload, sample_sessions


def _client(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="sk-test", max_retries=0)


def _send(client: openai.OpenAI, msgs: list[dict[str, str]], max_tokens: int):
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=msgs, max_tokens=max_tokens, timeout=20
    )


def test_planned_session_tokens_match_the_mock_and_the_prefix_is_cached(
    mock_server: ServerProcess,
):
    w = Workload(
        "chat",
        prompt_tokens=Uniform(180, 260),
        output_tokens=Constant(6),
        system_prefix_tokens=1100,
        turns=Constant(3),
    )
    seed = 4242
    plan = sample_sessions(w, 2, np.random.default_rng(seed))
    synth = PromptSynth(seed=seed)
    rng = np.random.default_rng(seed + 1)
    client = _client(mock_server)
    cached = []
    for s in range(plan.n_sessions):
        conv = Conversation(system=synth.system(plan.system_prefix_tokens))
        for i in range(plan.session_slice(s).start, plan.session_slice(s).stop):
            user = synth.text(int(plan.prompt_tokens[i]), rng)
            msgs = conv.messages(user)
            resp = _send(client, msgs, int(plan.output_tokens[i]))
            assert resp.usage.prompt_tokens == messages_tokens(msgs)
            assert resp.usage.completion_tokens <= plan.output_tokens[i]
            cached.append(resp.usage.prompt_tokens_details.cached_tokens)
            conv.record(user, resp.choices[0].message.content)
    # every request after the very first reuses at least the system prefix's full blocks
    assert all(c >= 1024 for c in cached[1:]), cached
    # later turns of a session also reuse the history carried forward
    assert cached[2] > cached[1] >= 1024


def test_a_different_workload_prefix_does_not_hit(mock_server: ServerProcess):
    client = _client(mock_server)
    rng = np.random.default_rng(0)
    sys_a, sys_b = system_prefix(1200, seed=11), system_prefix(1200, seed=12)
    first = _send(
        client, [{"role": "system", "content": sys_a}, {"role": "user", "content": "hi"}], 2
    )
    again = _send(
        client,
        [{"role": "system", "content": sys_a}, {"role": "user", "content": text_of_tokens(9, rng)}],
        2,
    )
    other = _send(
        client, [{"role": "system", "content": sys_b}, {"role": "user", "content": "hi"}], 2
    )
    assert first.usage.prompt_tokens == 1201
    assert again.usage.prompt_tokens_details.cached_tokens >= 1152
    assert other.usage.prompt_tokens_details.cached_tokens == 0
