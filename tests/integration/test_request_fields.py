"""Send what the scenario says: `extra_body`, `prompt_cache`, the per-run salt, `--seed`,
and what came back (early stops, prompt-cache hits) — against the bundled mock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadkit.analysis.served import served
from loadkit.results.reader import read_records
from loadkit.traffic.calls import plan_call
from loadkit.traffic.client import request_body
from loadkit.workload.salt import run_salt, salted
from tests.run_helpers import run_cli, scenario, summary
from tests.scenario_support import assert_one_line_error, validate

# --- validation: one line with file:line, exit 2 -------------------------------------------

_BASE = """name: t
{top}workloads:
  - name: chat
    prompt_tokens: 100
    output_tokens: 48
{extra}load: {{type: open, phases: [{{rate: 1/s, for: 2s}}]}}
"""


@pytest.mark.parametrize(
    ("top", "extra", "fragment"),
    [
        ("", "    extra_body: [ignore_eos]\n", "bad.yaml:6: workloads[0].extra_body: expected a"),
        ("", "    extra_body: true\n", "bad.yaml:6: workloads[0].extra_body: expected a mapping"),
        (
            "",
            "    extra_body:\n      ignore_eos: true\n      stream: false\n",
            "bad.yaml:8: workloads[0].extra_body.stream: loadkit sets this field itself",
        ),
        (
            "",
            "    extra_body: {max_tokens: 5}\n",
            "bad.yaml:6: workloads[0].extra_body.max_tokens: loadkit sets this field itself",
        ),
        (
            "",
            "    extra_body:\n      logit_bias: {when: 2024-01-01}\n",
            "bad.yaml:7: workloads[0].extra_body.logit_bias.when: expected text, a number",
        ),
        (
            "",
            "    extra_body: {user: sk-abcdefabcdefabcdef}\n",
            "bad.yaml:6: workloads[0].extra_body.user: this looks like an API key",
        ),
        ("prompt_cache: hot\n", "", "bad.yaml:2: prompt_cache: expected one of cold, warm"),
        ("prompt_cache: [warm]\n", "", "bad.yaml:2: prompt_cache: expected one of cold, warm"),
    ],
)
def test_bad_request_fields_are_one_line_with_file_and_line(
    tmp_path: Path, top: str, extra: str, fragment: str
) -> None:
    (tmp_path / "bad.yaml").write_text(_BASE.format(top=top, extra=extra))
    assert_one_line_error(validate("bad.yaml", tmp_path), fragment)


def test_good_request_fields_validate_as_plain_json(tmp_path: Path) -> None:
    from loadkit.scenario import load_scenario

    extra = (
        "    extra_body:\n      ignore_eos: true\n      min_tokens: 48\n      top_p: 0.9\n"
        "      response_format: {type: json_object}\n      stop: [END]\n      seed: null\n"
    )
    path = tmp_path / "good.yaml"
    path.write_text(_BASE.format(top="prompt_cache: warm\n", extra=extra))
    s = load_scenario(path)
    assert s.prompt_cache == "warm"
    body = dict(s.workloads[0].extra_body)
    assert body == {
        "ignore_eos": True,
        "min_tokens": 48,
        "top_p": 0.9,
        "response_format": {"type": "json_object"},
        "stop": ["END"],
    }  # a null drops the key (as it resets an inherited one)
    json.dumps(body)
    default = tmp_path / "default.yaml"
    default.write_text(_BASE.format(top="", extra=""))
    assert load_scenario(default).prompt_cache == "cold"


def test_a_bad_seed_option_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("run", str(scenario(tmp_path)), "--seed", "-3", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --seed must be in [0, 2**63 - 1], got -3"]


# --- the request body and the salt (units) -----------------------------------------------


def test_extra_body_is_merged_and_max_tokens_still_sent() -> None:
    for kind in ("chat", "completions"):
        call = plan_call(
            kind,
            "local",
            "w",
            "s",
            0,
            "m",
            "sys",
            (),
            "hello",
            48,
            True,
            extra_body={"ignore_eos": True},
        )
        body = request_body(call)
        assert body["ignore_eos"] is True and body["max_tokens"] == 48
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    plain = request_body(plan_call("chat", "local", "w", "s", 0, "m", "", (), "hi", 8, False))
    assert "ignore_eos" not in plain


def test_salt_keeps_the_prompt_size_and_differs_per_run() -> None:
    a, b = run_salt("run-a"), run_salt("run-b")
    assert a != b and len(a) == 10 and a == run_salt("run-a")
    text = "word " * 40
    assert len(salted(text, a)) == len(text) and salted(text, a).startswith(a + " ")
    assert salted("hi", a) == a + " hi"  # too short to replace: put in front
    assert salted(text, "") == text  # prompt_cache: warm


def test_served_shares_from_records() -> None:
    cols: dict[str, Any] = {
        "outcome": np.array(["ok", "ok", "ok", "ok", "http_error"]),
        "workload": np.array(["a", "a", "a", "b", "a"]),
        "finish_reason": np.array(["length", "stop", "", "length", ""]),
        "max_tokens": np.array([48, 48, 48, 0, 48]),
        "prompt_tokens": np.array([100, 100, 100, 50, 0]),
        "cached_tokens": np.array([50, 0, 0, 25, 0]),
    }
    s = served(cols)
    a = s["early_stops"]["by_workload"]["a"]
    assert (a["share"], a["early"], a["answers"], a["unknown"]) == (0.5, 1, 2, 1)
    assert s["early_stops"]["by_workload"]["b"]["share"] is None  # no max_tokens sent
    assert s["prompt_cache_hits"]["share"] == round(75 / 350, 4)
    assert s["prompt_cache_hits"]["by_workload"]["b"]["share"] == 0.5


# --- against the mock -------------------------------------------------------------------------

FAST = {"latency_scale": 0.05, "jitter": {"sigma": 0.0, "step_sigma": 0.0, "tail_prob": 0.0}}


def test_extra_body_reaches_the_server_and_early_stops_are_shown(
    tmp_path: Path, start_mock: Any
) -> None:
    mock = start_mock(FAST)
    # The mock's answers end by themselves (median 180 tokens): capped at 400 most stop early,
    # unless ignore_eos (sent in extra_body) tells it not to.
    work = {"prompt_tokens": 40, "output_tokens": 400, "max_tokens": 400}
    path = scenario(
        tmp_path,
        "eos",
        target={"base_url": mock.url, "model": "gpt-4o-mini"},
        workloads=[
            {"name": "forced", **work, "extra_body": {"ignore_eos": True}},
            {"name": "free", **work},
        ],
        load={"type": "open", "process": "constant", "phases": [{"rate": "12/s", "for": "3s"}]},
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = read_records(out / "requests.csv")
    ok = rec["outcome"].astype(str) == "ok"
    forced = ok & (rec["workload"].astype(str) == "forced")
    free = ok & (rec["workload"].astype(str) == "free")
    assert forced.sum() >= 8 and free.sum() >= 8
    assert (rec["completion_tokens"][forced] == 400).all()
    assert set(rec["finish_reason"][forced].astype(str)) == {"length"}
    assert (rec["max_tokens"][ok] == 400).all()
    assert set(rec["response_model"][ok].astype(str)) == {"gpt-4o-mini"}
    s = summary(out)["early_stops"]["by_workload"]
    assert s["forced"]["share"] == 0.0
    assert s["free"]["share"] > 0.5
    assert "warning: " in proc.stdout and "of workload free's answers" in proc.stdout
    assert "workload forced's" not in proc.stdout
    html = (out / "report.html").read_text()
    assert (
        "<th>ended before max_tokens</th>" in html and "<th>prompt tokens from cache</th>" in html
    )


def _cached(run: Path) -> tuple[np.ndarray, np.ndarray]:
    rec = read_records(run / "requests.csv")
    ok = rec["outcome"].astype(str) == "ok"
    return rec["cached_tokens"][ok], rec["prompt_tokens"][ok]


def test_a_rerun_is_cold_by_default_warm_on_purpose_and_seed_overrides(
    tmp_path: Path, start_mock: Any
) -> None:
    # One mock for every run (its prefix cache outlives a run, as a real server's does);
    # 16-token blocks as vLLM, no minimum prompt length.
    mock = start_mock({**FAST, "prefix_cache": {"block_tokens": 16, "min_prompt_tokens": 0}})
    work = {
        "name": "chat",
        "prompt_tokens": 200,
        "output_tokens": 4,
        "system_prefix_tokens": 128,
    }
    common = {
        "target": {"base_url": mock.url, "model": "gpt-4o-mini"},
        "workloads": [work],
        "load": {"type": "open", "process": "constant", "phases": [{"rate": "10/s", "for": "2s"}]},
    }
    cold = scenario(tmp_path, "cold", **common)
    warm = scenario(tmp_path, "warm", prompt_cache="warm", **common)

    def run(path: Path, name: str, *extra: str) -> Path:
        out = tmp_path / name
        proc = run_cli("run", str(path), "--out", str(out), *extra, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return out

    c1, c2 = run(cold, "c1"), run(cold, "c2")
    salts = [summary(r)["prompt_salt"] for r in (c1, c2)]
    env = [json.loads((r / "environment.json").read_text()) for r in (c1, c2)]
    assert all(salts) and salts[0] != salts[1]
    assert [e["prompt_salt"] for e in env] == salts
    cached, _ = _cached(c2)
    # The shared system prefix (128 tokens) stays cached; the salt right after it misses.
    assert cached.size >= 15 and (cached <= 128).all() and np.mean(cached == 128) > 0.8

    w1, w2 = run(warm, "w1"), run(warm, "w2")
    assert summary(w1)["prompt_salt"] == "" and summary(w2)["prompt_cache"] == "warm"
    cached, prompt = _cached(w2)
    assert cached.sum() / prompt.sum() > 0.9  # the same prompts again: served from cache
    assert summary(w2)["prompt_cache_hits"]["share"] > 0.9

    w3 = run(warm, "w3", "--seed", "12")  # another seed, other prompts: only the prefix hits
    assert summary(w3)["seed"] == 12
    assert json.loads((w3 / "environment.json").read_text())["seed"] == 12
    cached, _ = _cached(w3)
    assert (cached <= 128).all()
