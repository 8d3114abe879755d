"""Profiles and configuration: bundled files, overrides, one-line file:line errors, draws."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from loadkit.errors import UserError
from mocks.profile import PROFILE_KEYS, bundled_profiles, load_config, load_profile
from mocks.ratelimit import Bucket, go_duration
from mocks.region import Region
from tests.conftest import StartMock

PROFILE_DIR = Path(__file__).resolve().parents[2] / "mocks" / "profiles"


def test_bundled_profiles_load_and_document_every_key() -> None:
    assert {"hosted-api", "vllm-h100"} <= set(bundled_profiles())
    for name in ("hosted-api", "vllm-h100"):
        assert load_profile(name).models
        text = (PROFILE_DIR / f"{name}.yaml").read_text()
        for key in PROFILE_KEYS:
            if key not in ("name", "port"):
                assert f"\n{key}:" in text, (name, key)
        assert "#" in text and "source" in text.lower()
    hosted = load_profile("hosted-api")
    assert [m.id for m in hosted.models] == ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
    vllm = load_profile("vllm-h100")
    assert vllm.model("meta-llama/Llama-3.1-8B-Instruct") is not None
    assert any(m.kind == "embedding" for m in vllm.models)


def test_profiles_are_in_the_documented_ranges() -> None:
    hosted = load_profile("hosted-api")
    ttft_ms = hosted.prefill_overhead_ms + 1000 * hosted.prefill_ms_per_token
    assert 300 <= ttft_ms <= 800  # TTFT ~0.3-0.8 s at a 1k-token prompt
    assert 50 <= 1000 / hosted.decode_step_ms <= 100  # 50-100 tokens/s per stream
    vllm = load_profile("vllm-h100")
    ttft_ms = vllm.prefill_overhead_ms + 1000 * vllm.prefill_ms_per_token
    assert 60 <= ttft_ms <= 120
    itl_32 = vllm.decode_step_ms + 31 * vllm.decode_step_ms_per_seq
    assert 10 <= itl_32 <= 15  # ITL 10-15 ms at a typical batch of 32


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "mock.yaml"
    path.write_text(text)
    return str(path)


def test_config_overrides_and_regions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "profile: vllm-h100\nmax_num_seqs: 64\nregions:\n  us: {}\n  eu:\n    latency_scale: 2\n",
    )
    cfg = load_config(config_file=path, seed=3)
    assert [n for n, _ in cfg.regions] == ["us", "eu"] and cfg.seed == 3
    us, eu = (p for _, p in cfg.regions)
    assert us.max_num_seqs == eu.max_num_seqs == 64
    assert (us.latency_scale, eu.latency_scale) == (1.0, 2.0)
    cloned = load_config(regions=["a", "b", "c"])
    assert [n for n, _ in cloned.regions] == ["a", "b", "c"]
    assert cloned.regions[0][1] == cloned.regions[2][1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "regions:\n  eu:\n    max_num_seqs: -3\n",
            ":3: regions.eu.max_num_seqs: expected an integer >= 1, got -3",
        ),
        ("max_num_sqs: 3\n", ":1: max_num_sqs: unknown profile key"),
        ("jitter:\n  sigma: high\n", ":2: jitter.sigma: expected a number >= 0, got 'high'"),
        (
            "output_tokens:\n  median: 500\n  p90: 100\n",
            ":3: output_tokens.p90: expected 0 < median < p90",
        ),
        ("models: []\n", ":1: models: expected a non-empty list"),
        ("require_api_key: true\n", "api_keys: require_api_key needs at least one key"),
        ("profile: nope\n", "unknown profile 'nope'"),
        ("max_waiting: [1\n", "invalid YAML"),
        ("rate_limits: {rpm: 0}\n", ":1: rate_limits.rpm: expected an integer >= 1, got 0"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_config(config_file=path)
    message = str(info.value)
    assert expected in message and "\n" not in message
    assert message.startswith(path)


def test_cli_reports_bad_config_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, "regions:\n  eu:\n    decode_step_ms: fast\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mocks", "--config", path],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0] == (
        f"error: {path}:3: regions.eu.decode_step_ms: expected a number >= 0, got 'fast'"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "loadkit.cli", "mock", "--profile", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("error: unknown profile 'nope'")


def test_go_durations_like_openai() -> None:
    assert go_duration(0.644) == "644ms"
    assert go_duration(1.0) == "1s"
    assert go_duration(1.5) == "1.5s"
    assert go_duration(360.0) == "6m0s"
    assert go_duration(3725.0) == "1h2m5s"


def test_bucket_refills_at_its_rate() -> None:
    b = Bucket(per_minute=60, burst_seconds=2.0, now=0.0)
    assert b.capacity == 2.0
    b.level = 0.0
    assert b.wait_for(1.0) == pytest.approx(1.0)
    b.refill(0.5)
    assert b.level == pytest.approx(0.5)
    assert b.wait_for(5.0) == float("inf")


def test_draws_depend_on_seed_content_and_repeat_count_only() -> None:
    profile = load_profile("hosted-api")
    a = Region("r", 0, profile, seed=1)
    b = Region("r", 0, profile, seed=1)
    x, y = b"request-x", b"request-y"
    first = [a.plan(x), a.plan(y), a.plan(x)]
    second = [b.plan(y), b.plan(x), b.plan(x)]
    assert first[0] == second[1] and first[1] == second[0] and first[2] == second[2]
    assert first[0] != first[2]
    c = Region("r", 0, profile, seed=2)
    assert c.plan(x) != first[0]
    assert Region("other", 1, profile, seed=1).plan(x) != first[0]  # regions draw independently
    lengths = [a.plan(b"z").natural_tokens for _ in range(2000)]
    assert 150 <= sorted(lengths)[1000] <= 210  # median 180
    assert 380 <= sorted(lengths)[1800] <= 520  # p90 450


def test_profile_is_frozen() -> None:
    profile = load_profile("hosted-api")
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.max_num_seqs = 1  # type: ignore[misc]


def test_sigterm_closes_cleanly_with_exit_0(start_mock: StartMock) -> None:
    server = start_mock(None, "--regions", "us,eu")
    assert server.url.startswith("http://127.0.0.1:")
    assert server.stop() == 0
