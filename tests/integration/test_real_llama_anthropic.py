"""loadkit's `anthropic` API against llama.cpp's own `llama-server`, which serves Anthropic's
Messages API at `/v1/messages` beside OpenAI's chat completions: one run, half the users on
each API of the same server, every token accounted against the server's own /metrics.

llama-server's `input_tokens` leaves out the prompt tokens it read from its cache
(`cache_read_input_tokens`), as Anthropic's does; loadkit's record adds them back, so the
prompt tokens of every call equal the server's `prompt_tokens_total` (processed) plus
`prompt_tokens_cached_total` (reused) deltas, and the completion tokens its
`tokens_predicted_total` delta, with the start-up check and calibration included.
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest

from loadkit.results.reader import read_records
from tests.real_target import MODEL_NAME
from tests.run_helpers import run_cli, scenario, summary

METRICS = ("prompt_tokens_total", "prompt_tokens_cached_total", "tokens_predicted_total")


def _metrics(base_url: str) -> dict[str, float]:
    origin = base_url.removesuffix("/v1")
    with urllib.request.urlopen(origin + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out = {}
    for name in METRICS:
        m = re.search(rf"^llamacpp:{name} ([0-9.e+]+)$", text, flags=re.M)
        assert m, f"llama-server's /metrics has no llamacpp:{name}"
        out[name] = float(m.group(1))
    return out


@pytest.fixture(scope="module")
def both_apis_run(tmp_path_factory: pytest.TempPathFactory, llama_server: str) -> dict:
    tmp = tmp_path_factory.mktemp("anthropic")
    path = scenario(
        tmp,
        "two-apis",
        target={"base_url": llama_server, "model": MODEL_NAME},
        endpoints={"messages": {"api": "anthropic", "base_url": llama_server, "model": MODEL_NAME}},
        regions=[
            {"name": "oa", "share": "50%"},
            {"name": "an", "share": "50%", "endpoint": "messages"},
        ],
        workloads=[
            {
                "name": "chat",
                "kind": "chat",
                "prompt_tokens": 120,
                "output_tokens": 24,
                "max_tokens": 24,
                "system_prefix_tokens": 40,
                "extra_body": {"ignore_eos": True},
            }
        ],
        load={
            "type": "closed",
            "spawn_rate": "4/s",
            "phases": [{"kind": "hold", "users": 4, "for": "12s"}],
        },
    )
    before = _metrics(llama_server)
    out = tmp / "run"
    proc = run_cli("run", str(path), "--out", str(out), "--drain", "60s", timeout=240)
    after = _metrics(llama_server)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {
        "out": out,
        "stdout": proc.stdout,
        "delta": {k: after[k] - before[k] for k in METRICS},
    }


def test_both_apis_answer_without_errors_and_say_go(both_apis_run: dict) -> None:
    rec = read_records(both_apis_run["out"] / "requests.csv")
    api = rec["api"].astype(str)
    outcome = rec["outcome"].astype(str)
    assert set(api) == {"openai", "anthropic"}
    an = api == "anthropic"
    assert (outcome[~an] == "ok").all(), rec["error"][~an & (outcome != "ok")]
    # llama-server's /v1/messages does not honour `ignore_eos` (its chat completions does):
    # an answer that ends before the forced length says so, and nothing else fails there
    early = an & (outcome == "truncated")
    assert set(outcome[an]) <= {"ok", "truncated"}
    assert (rec["finish_reason"].astype(str)[early] == "stop").all()
    assert (rec["completion_tokens"][early] < 24).all()
    assert set(rec["endpoint"].astype(str)[an]) == {"/v1/messages"}
    assert set(rec["endpoint_name"].astype(str)[an]) == {"messages"}
    assert set(rec["region"].astype(str)[an]) == {"an"}
    assert (rec["tokens_source"].astype(str) == "server").all()
    full = outcome == "ok"
    assert (rec["completion_tokens"][full] == 24).all()
    finish = rec["finish_reason"].astype(str)
    assert set(finish[~an]) == {"length"}
    # Anthropic's max_tokens -> length; an answer whose end of turn fell on its 24th token
    # says end_turn -> stop (seen once in five runs)
    assert "length" in set(finish[an & full]) and set(finish[an & full]) <= {"length", "stop"}
    s = summary(both_apis_run["out"])
    rows = {(r["api"], r["endpoint"]): r for r in s["providers"]}
    assert rows[("anthropic", "messages")]["ok"] == int((an & full).sum())
    assert rows[("openai", "target")]["ok"] == int((~an).sum())


def test_tokens_equal_the_servers_own_counters(both_apis_run: dict) -> None:
    out = both_apis_run["out"]
    rec = read_records(out / "requests.csv")
    calib = json.loads((out / "calibration.json").read_text())
    points = [p for fit in calib["fits"].values() for p in fit["points"]]
    assert points, "calibration sent nothing"
    d = both_apis_run["delta"]
    served_prompt = d["prompt_tokens_total"] + d["prompt_tokens_cached_total"]
    # the start-up check finds the model in the server's list and sends no call
    recorded_prompt = int(rec["prompt_tokens"].sum()) + sum(int(n) for _, n in points)
    assert recorded_prompt == served_prompt
    assert int(rec["cached_tokens"].sum()) <= d["prompt_tokens_cached_total"]
    # calibration asks one token per prompt
    assert int(rec["completion_tokens"].sum()) + len(points) == d["tokens_predicted_total"]
