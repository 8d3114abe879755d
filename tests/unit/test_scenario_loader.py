"""The scenario language: shipped scenarios, extends, units, defaults, cross-checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from loadkit.scenario import ScenarioError, load_scenario
from loadkit.scenario.bridge import session_workload, users_at
from loadkit.scenario.model import (
    SDK_RETRY_STATUSES,
    ClosedLoad,
    OpenLoad,
    TraceLoad,
)
from loadkit.scenario.units import fmt_duration, parse_duration, parse_fraction, parse_rate
from loadkit.traffic.config import is_loopback
from loadkit.workload.distributions import Constant, Empirical, LogNormal, Uniform

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))

MINIMAL = """\
name: t
workloads:
  - {name: chat, prompt_tokens: 100, output_tokens: 50}
load:
  type: closed
  phases:
    - {kind: hold, users: 2, for: 10s}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    text = str(info.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_scenario_validates(path: Path) -> None:
    s = load_scenario(path)
    assert s.name == path.stem
    # runnable on this machine, no keys: the bundled mock, or a self-hosted server on
    # loopback (llama-server.yaml: llama.cpp's server built by ../shared/real-target)
    assert s.target.kind == "mock" or (
        is_loopback(s.target.base_url or "") and not s.target.api_key_env
    )
    assert abs(sum(r.share for r in s.regions) - 1.0) < 1e-12
    assert s.duration_s > 0


def test_the_issue_asks_for_these_scenarios() -> None:
    names = {p.stem for p in SHIPPED}
    assert {
        "quickstart",
        "pilot",
        "production",
        "outage-drill",
        "capacity",
        "trace-replay",
    } <= names
    quick = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    assert 20 <= quick.duration_s <= 40 and len(quick.regions) == 1
    assert quick.target.mock_profile == "hosted-api"
    capacity = load_scenario(ROOT / "scenarios" / "capacity.yaml")
    assert isinstance(capacity.load, ClosedLoad)
    assert [p.kind for p in capacity.load.phases] == ["step"] * len(capacity.load.phases)
    replay = load_scenario(ROOT / "scenarios" / "trace-replay.yaml")
    assert isinstance(replay.load, TraceLoad) and replay.load.format == "azure"
    assert isinstance(replay.workloads[0].prompt_tokens, Empirical)


def test_production_is_pilot_plus_changes() -> None:
    pilot = load_scenario(ROOT / "scenarios" / "pilot.yaml")
    prod = load_scenario(ROOT / "scenarios" / "production.yaml")
    assert [r.name for r in prod.regions] == ["na", "eu", "apac"]
    assert [r.utc_offset_h for r in prod.regions] == [-5, 1, 8]
    assert [r.rtt_ms for r in prod.regions] == [11, 89, 229]
    assert {w.kind for w in prod.workloads} == {"chat", "rag"}
    assert {w.name for w in prod.workloads} == {"chat", "rag", "summarise"}
    assert prod.load.daily is not None and prod.load.daily.name == "conversation"
    assert max(p.users for p in prod.load.phases) >= 200
    # inherited unchanged
    assert prod.target == pilot.target
    assert prod.client == pilot.client
    # mappings merge key by key: pilot's TTFT/ITL, production's E2E
    assert prod.slo.ttft_ms == pilot.slo.ttft_ms
    assert prod.slo.e2e_ms == {"p95": 20_000.0}
    assert prod.pricing is not None and prod.pricing.model == "gpt-4o-mini"
    assert prod.pricing.regional_uplift == {"eu": pytest.approx(1.1)}
    assert prod.pricing.price_for("eu").input_per_1m == pytest.approx(0.165)
    assert prod.pricing.price_for("na").input_per_1m == pytest.approx(0.15)


def test_outage_drill_faults_and_failover() -> None:
    s = load_scenario(ROOT / "scenarios" / "outage-drill.yaml")
    assert s.client.failover == ("eu", "na")
    outage, storm, slow = s.faults
    assert (outage.kind, outage.where.region, outage.at_s, outage.for_s) == (
        "region_outage",
        "na",
        600.0,
        720.0,
    )
    assert storm.kind == "http_error" and storm.params == {"status": 429, "retry_after_ms": 2000.0}
    assert storm.rate == pytest.approx(0.4) and storm.at_s >= outage.end_s
    assert slow.params == {"fixed_ms": 400.0, "jitter_ms": 200.0}


def test_model_is_frozen(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, MINIMAL))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.name = "other"  # type: ignore[misc]
    assert isinstance(s.regions, tuple) and isinstance(s.workloads, tuple)


def test_defaults_follow_the_openai_sdk(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, MINIMAL))
    r = s.client.retries
    assert (r.max_retries, r.backoff_initial_s, r.backoff_max_s, r.jitter) == (2, 0.5, 8.0, 0.25)
    assert r.honour_retry_after
    assert {408, 409, 429, 500, 503, 599} <= set(r.retry_on_status)
    assert 400 not in r.retry_on_status and 404 not in r.retry_on_status
    assert r.retry_on_status == SDK_RETRY_STATUSES
    assert s.client.timeouts.total_s == 600.0
    assert s.target.kind == "mock" and s.target.mock_profile == "hosted-api"
    assert [r.name for r in s.regions] == ["local"]
    assert s.duration_s == 10.0


def test_units() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("5m") == 300
    assert parse_duration("1h30m") == 5400
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("2d") == 172800
    assert parse_rate("12/s") == 12
    assert parse_rate("300/min") == 5
    assert parse_rate("5000/h") == pytest.approx(5000 / 3600)
    assert parse_fraction("0.5%") == pytest.approx(0.005)
    assert parse_fraction(0.25) == 0.25
    for bad in (90, "90", "5 minutes", "-5s", "", "1h-30m", True):
        with pytest.raises(ValueError):
            parse_duration(bad)
    for bad in (12, "12", "12/fortnight", "-1/s"):
        with pytest.raises(ValueError):
            parse_rate(bad)
    for bad in (1.5, "150%", "abc", "-1%", None):
        with pytest.raises(ValueError):
            parse_fraction(bad)
    assert [fmt_duration(x) for x in (0.25, 90, 5400, 0)] == ["250ms", "1m30s", "1h30m", "0s"]


def test_distributions_and_workload_fields(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "  - {name: chat, prompt_tokens: 100, output_tokens: 50}\n",
        """\
  - name: chat
    prompt_tokens: {dist: lognormal, median: 900, p90: 2700}
    output_tokens: {dist: uniform, low: 10, high: 20}
    turns: {dist: constant, value: 3}
    think_time: {dist: lognormal, median: 2s, p90: 8s}
    system_prefix_tokens: 250
    max_tokens: 300
  - name: rag
    kind: rag
    weight: 2
    prompt_tokens: 40
    output_tokens: {dist: normal, mean: 200, std: 20}
    rag: {embed_tokens: 40, retrieval_delay: 150ms, context_tokens: 1500}
  - name: emb
    kind: embeddings
    prompt_tokens: {dist: empirical, values: [10, 20, 30]}
""",
    )
    s = load_scenario(write(tmp_path, text))
    chat, rag, emb = s.workloads
    assert chat.prompt_tokens == LogNormal(900, 2700)
    assert chat.output_tokens == Uniform(10, 20)
    assert chat.turns == Constant(3)
    assert chat.think_time_s == LogNormal(2.0, 8.0)
    assert (chat.system_prefix_tokens, chat.max_tokens, chat.stream, chat.history) == (
        250,
        300,
        True,
        True,
    )
    assert rag.rag is not None and rag.rag.retrieval_delay_s == Constant(0.15)
    assert rag.weight == 2
    assert emb.stream is False and emb.output_tokens == Constant(0)
    sw = session_workload(rag)
    assert sw.rag is not None and sw.rag.chunk_tokens == Constant(1500)


def test_open_load_and_daily_curve(tmp_path: Path) -> None:
    text = MINIMAL.split("load:")[0] + (
        "load:\n  type: open\n  process: gamma\n  cv: 2.5\n  max_in_flight: 300\n"
        "  phases:\n    - {rate: 5/s, for: 1m}\n    - {from: 5/s, to: 600/min, for: 2m}\n"
        "  daily: {curve: business-hours, start_utc_hour: 6}\n"
    )
    s = load_scenario(write(tmp_path, text))
    load = s.load
    assert isinstance(load, OpenLoad)
    assert (load.process, load.cv, load.max_in_flight) == ("gamma", 2.5, 300)
    assert [(p.duration_s, p.rate_start, p.rate_end) for p in load.phases] == [
        (60, 5, 5),
        (120, 5, 10),
    ]
    assert s.duration_s == 180
    assert load.daily is not None and load.daily.start_utc_hour == 6
    assert len(load.daily.hourly) == 24


def test_users_at_follows_the_phases(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    - {kind: hold, users: 2, for: 10s}\n",
        "    - {kind: ramp, users: 10, for: 10s}\n    - {kind: spike, users: 50, for: 5s}\n"
        "    - {kind: hold, for: 5s}\n    - {kind: step, users: 20, for: 5s}\n",
    )
    load = load_scenario(write(tmp_path, text)).load
    assert isinstance(load, ClosedLoad)
    assert load.phases[2].users == 10  # a hold without users keeps the level before the spike
    assert [users_at(load, t) for t in (0, 5, 12, 17, 22, 30)] == [0, 5, 50, 10, 20, 0]


def test_extends_reports_the_parent_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    write(tmp_path / "base", MINIMAL + "slo:\n  error_rate: 101%\n", "parent.yaml")
    child = write(tmp_path, "extends: base/parent.yaml\nname: child\n", "child.yaml")
    msg = error_of(child)
    assert msg.endswith(
        "parent.yaml:9: slo.error_rate: must be a percentage between 0% and 100%, got '101%'"
    )
    assert "base/parent.yaml:9:" in msg
    # the child overrides the bad value: then it validates, with the child's name
    write(tmp_path, "extends: base/parent.yaml\nname: child\nslo: {error_rate: 1%}\n", "ok.yaml")
    s = load_scenario(tmp_path / "ok.yaml")
    assert s.name == "child" and s.slo.error_rate == pytest.approx(0.01)


def test_null_resets_an_inherited_value(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL + "budget: {max_usd: 5}\n", "parent.yaml")
    s = load_scenario(write(tmp_path, "extends: parent.yaml\nbudget: null\n"))
    assert s.budget.max_usd is None


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "  - {name: chat, prompt_tokens: 100, output_tokens: 50}\n",
        "  - &base {name: chat, prompt_tokens: 100, output_tokens: 50}\n"
        "  - <<: *base\n    name: chat2\n",
    )
    s = load_scenario(write(tmp_path, text))
    assert [w.name for w in s.workloads] == ["chat", "chat2"]
    assert s.workloads[1].prompt_tokens == Constant(100)


def test_shares_within_tolerance_are_normalised(tmp_path: Path) -> None:
    regions = (
        "regions:\n  - {name: a, share: X}\n  - {name: b, share: X}\n  - {name: c, share: X}\n"
    )
    msg = error_of(write(tmp_path, MINIMAL + regions.replace("X", "33%")))
    assert msg.endswith("regions: shares must add up to 1 (100%), got 0.33 + 0.33 + 0.33 = 0.99")
    s = load_scenario(write(tmp_path, MINIMAL + regions.replace("X", "33.33%"), "ok.yaml"))
    assert sum(r.share for r in s.regions) == pytest.approx(1.0, abs=1e-12)
    assert s.regions[0].share == pytest.approx(1 / 3)


def test_unknown_keys_suggest_the_right_one(tmp_path: Path) -> None:
    msg = error_of(write(tmp_path, MINIMAL + "budget: {max_dollars: 5}\n"))
    assert msg.endswith("budget.max_dollars: unknown key (allowed here: max_usd, max_requests)")
    msg = error_of(write(tmp_path, MINIMAL + "budget: {max_usdd: 5}\n"))
    assert msg.endswith("budget.max_usdd: unknown key; did you mean 'max_usd'?")


def test_http_target_needs_a_model_and_takes_env_names(tmp_path: Path) -> None:
    text = MINIMAL + (
        "target:\n  base_url: https://example.openai.azure.com/openai/v1/\n"
        "  api_key_env: AZURE_OPENAI_API_KEY\n  model: gpt-4o\n"
        "  headers: {api-key: '${AZURE_OPENAI_API_KEY}', x-team: loadkit}\n"
        "  region_endpoints: {local: 'https://local.example.com/v1'}\n"
    )
    t = load_scenario(write(tmp_path, text)).target
    assert (t.kind, t.base_url, t.api_key_env, t.model) == (
        "http",
        "https://example.openai.azure.com/openai/v1",
        "AZURE_OPENAI_API_KEY",
        "gpt-4o",
    )
    assert t.headers["api-key"] == "${AZURE_OPENAI_API_KEY}"
    assert t.region_endpoints == {"local": "https://local.example.com/v1"}
    msg = error_of(write(tmp_path, text.replace("  model: gpt-4o\n", ""), "nomodel.yaml"))
    assert "target: missing required key 'model'" in msg


def test_mock_overrides_are_checked_by_the_mock(tmp_path: Path) -> None:
    ok = (
        MINIMAL + "target:\n  mock: hosted-api\n  overrides: {decode_step_ms: 5, max_num_seqs: 8}\n"
    )
    assert load_scenario(write(tmp_path, ok)).target.mock_overrides == {
        "decode_step_ms": 5,
        "max_num_seqs": 8,
    }
    msg = error_of(write(tmp_path, ok.replace("decode_step_ms", "decode_stepms"), "bad.yaml"))
    assert (
        "target.overrides.decode_stepms: unknown mock profile key; did you mean 'decode_step_ms'?"
        in msg
    )


def test_pricing_override_for_an_unlisted_model(tmp_path: Path) -> None:
    text = MINIMAL + "pricing: {model: my-finetune, input: 3, output: 12}\n"
    p = load_scenario(write(tmp_path, text)).pricing
    assert p is not None and (p.price.input_per_1m, p.price.output_per_1m) == (3, 12)
    text = MINIMAL + "pricing: {model: gpt-4o, output: 9}\n"
    p = load_scenario(write(tmp_path, text, "o.yaml")).pricing
    assert p is not None and (p.price.input_per_1m, p.price.output_per_1m) == (2.5, 9)


def test_a_mock_target_defaults_to_a_model_the_profile_serves(tmp_path: Path) -> None:
    s = load_scenario(write(tmp_path, MINIMAL + "target: {mock: vllm-h100}\n"))
    assert s.target.model == "meta-llama/Llama-3.1-8B-Instruct"
    s = load_scenario(write(tmp_path, MINIMAL + "target: {mock: hosted-api}\n", "h.yaml"))
    assert s.target.model == "gpt-4o-mini"


def test_shipped_rtts_match_the_published_azure_matrix() -> None:
    """The RTTs in production.yaml quote Azure's P95 inter-region table (to an East US endpoint)."""
    import csv

    matrix = ROOT.parent / "shared" / "data" / "network" / "azure_inter_region_rtt_p95_ms.csv"
    if not matrix.is_file():
        pytest.skip("shared network data not present (../shared/data/network)")
    with matrix.open(newline="", encoding="utf-8") as fh:
        rows = {row["Source"]: row for row in csv.DictReader(fh)}
    east_us = rows["East US"]
    quoted = {"na": "East US 2", "eu": "West Europe", "apac": "Southeast Asia"}
    prod = load_scenario(ROOT / "scenarios" / "production.yaml")
    for region in prod.regions:
        assert region.rtt_ms == float(east_us[quoted[region.name]]), region.name
