"""The provider-API scenarios as a user runs them: the shipped `provider-failover` and
`copilot` scenarios against the bundled mock, and the `http` API against a copilot written
with a common framework (aiohttp), not loadkit's mock."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from loadkit.results.reader import read_records
from tests.ports import free_port
from tests.run_helpers import REPO, run_cli, scenario, summary


def test_provider_failover_serves_through_both_apis_and_prices_each(tmp_path: Path) -> None:
    out = tmp_path / "pf"
    proc = run_cli(
        "run", str(REPO / "scenarios" / "provider-failover.yaml"), "--duration", "24s",
        "--out", str(out), timeout=180,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    rec = read_records(out / "requests.csv")
    api = rec["api"].astype(str)
    outcome = rec["outcome"].astype(str)
    ok = outcome == "ok"
    assert (ok & (api == "openai")).any() and (ok & (api == "anthropic")).any()
    # failover across providers: requests whose attempts reached both APIs
    rid = rec["request_id"].astype(str)
    crossed = set(rid[api == "openai"]) & set(rid[api == "anthropic"])
    assert crossed
    # the primary's outage refused connections; the storm hit the fallback with 529s
    assert (outcome[api == "openai"] == "connect_error").any()
    assert set(outcome[api == "anthropic"]) <= {"ok", "overloaded", "stream_cut"}
    assert (outcome[api == "anthropic"] == "overloaded").any()
    an_ok = ok & (api == "anthropic")
    assert (rec["model"].astype(str)[an_ok] == "claude-sonnet-4-5").all()
    assert rec["cache_write_tokens"][an_ok].sum() > 0 and rec["cached_tokens"][an_ok].sum() > 0
    s = summary(out)
    rows = {r["api"]: r for r in s["providers"]}
    assert rows["anthropic"]["cost_usd"] > 0 and rows["openai"]["cost_usd"] > 0
    # claude-sonnet-4-5 costs 20x gpt-4o-mini per token: the fallback's answers cost more
    assert rows["anthropic"]["cost_usd_per_ok"] > 5 * rows["openai"]["cost_usd_per_ok"]
    assert "per provider" in proc.stdout
    html = (out / "report.html").read_text()
    assert "Per provider" in html and "claude-fallback" in html


def test_copilot_measures_the_chunked_text_answer_and_shows_the_cut(tmp_path: Path) -> None:
    out = tmp_path / "cp"
    proc = run_cli(
        "run", str(REPO / "scenarios" / "copilot.yaml"), "--duration", "16s",
        "--out", str(out), timeout=180,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    rec = read_records(out / "requests.csv")
    assert set(rec["api"].astype(str)) == {"http"}
    assert set(rec["endpoint"].astype(str)) == {"/api/ask"}
    outcome = rec["outcome"].astype(str)
    ok = outcome == "ok"
    assert ok.sum() >= 10
    assert np.isfinite(rec["ttft_ms"][ok]).all() and np.isfinite(rec["itl_mean_ms"][ok]).all()
    assert (rec["e2e_ms"][ok] > rec["ttft_ms"][ok]).all()
    # the cut ends a text stream cleanly, after 5 of the copilot's text chunks: the answer
    # carries the fault's tag, and analysis (the proxy's hit journal) counts it truncated
    cut = rec["fault"].astype(str) == "cut-answers"
    assert cut.any()
    # (tokens estimated from the text: the copilot reports no usage)
    assert (rec["completion_tokens"][cut] < 10).all()
    assert np.median(rec["completion_tokens"][ok & ~cut]) > 30
    s = summary(out)
    assert s["outcomes"].get("truncated") == int(cut.sum())
    assert set(s["outcomes"]) <= {"ok", "truncated"}
    assert {c["metric"] for c in s["slo"]["checks"]} >= {"ttft_ms.p95", "itl_ms.p95"}


def test_http_api_against_a_copilot_written_with_aiohttp(tmp_path: Path) -> None:
    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "tests.copilot_app", str(port)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and app.poll() is None, "app did not start"
                time.sleep(0.1)
        path = scenario(
            tmp_path,
            "own-copilot",
            target={
                "base_url": f"http://127.0.0.1:{port}",
                "model": "our-copilot",
                "api": "http",
                "request": {"path": "/ask", "body": {"q": "{{question}}", "max_words": 12}},
                "response": {"format": "text"},
            },
            workloads=[{"name": "ask", "kind": "chat", "prompt_tokens": 30, "output_tokens": 12}],
            load={
                "type": "closed",
                "spawn_rate": "3/s",
                "phases": [{"kind": "hold", "users": 3, "for": "4s"}],
            },
        )
        out = tmp_path / "run"
        proc = run_cli("run", str(path), "--out", str(out), timeout=120)
    finally:
        app.terminate()
        app.wait(timeout=10)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rec = read_records(out / "requests.csv")
    assert (rec["outcome"].astype(str) == "ok").all(), rec["error"]
    assert rec.n >= 10
    # 20 ms retrieval before the first word, 12 words 5 ms apart
    assert (rec["ttft_ms"] >= 20.0).all() and (rec["ttft_ms"] < 200.0).all()
    assert (rec["itl_mean_ms"] >= 4.0).all()
    assert (rec["tokens_source"].astype(str) == "estimated").all()  # it reports no usage
    assert "readiness: GO" in proc.stdout
