"""Real Locust users against the real mock: sessions, history, RAG, regions, admission limits."""

from __future__ import annotations

from collections import defaultdict

import pytest

from loadkit.serving.launch import running_server
from tests.integration.test_traffic_client import drive

SCENARIO = """
name: users-test
seed: 3
target: {mock: hosted-api, model: gpt-4o-mini}
regions:
  - {name: eu, share: 75%}
  - {name: us, share: 25%}
workloads:
  - name: chat
    kind: chat
    weight: 3
    prompt_tokens: {dist: constant, value: 40}
    output_tokens: {dist: constant, value: 8}
    system_prefix_tokens: 20
    turns: {dist: constant, value: 3}
    think_time: {dist: constant, value: 50ms}
  - name: rag
    kind: rag
    weight: 1
    prompt_tokens: {dist: constant, value: 30}
    output_tokens: {dist: constant, value: 5}
    rag:
      embed_tokens: {dist: constant, value: 30}
      retrieval_delay: {dist: constant, value: 100ms}
      context_tokens: {dist: constant, value: 200}
load:
  type: closed
  spawn_rate: 10/s
  phases:
    - {kind: hold, users: 8, for: 10s}
"""


def test_users_run_sessions_with_history_rag_and_regions(tmp_path):
    path = tmp_path / "users.yaml"
    path.write_text(SCENARIO)
    with running_server("mock", ["mocks", "--port", "0"]) as srv:
        out = drive("users", scenario=str(path), url=srv.url, users=8, seconds=5)
    assert out["classes"] == {"LLMUser_chat": 750, "LLMUser_rag": 250}
    recs = out["records"]
    # runner.stop() kills users mid-request: those attempts are recorded as aborted
    assert recs and {r["outcome"] for r in recs} <= {"ok", "aborted"}
    aborted = [r for r in recs if r["outcome"] == "aborted"]
    assert len(aborted) <= 8
    # All 8 users start in one Locust batch; their first requests spread over a second.
    firsts: dict[str, float] = {}
    for r in recs:
        user = r["session_id"].rsplit("-", 1)[0]
        firsts[user] = min(firsts.get(user, float("inf")), r["t_sent"])
    assert len(firsts) == 8 and max(firsts.values()) - min(firsts.values()) > 300.0
    recs = [r for r in recs if r["outcome"] == "ok"]
    # Locust rows: every attempt once in Aggregated, TTFT rows for the streamed calls only
    assert out["total"] == len(recs)  # aborted attempts are records, not Locust failures
    streamed = sum(1 for r in recs if r["endpoint"] == "/v1/chat/completions")
    assert out["ttft_rows"] == streamed

    sessions: dict[str, list[dict]] = defaultdict(list)
    for r in recs:
        sessions[r["session_id"]].append(r)
    chat = {s: rs for s, rs in sessions.items() if rs[0]["workload"] == "chat"}
    full = [rs for rs in chat.values() if len(rs) == 3]
    assert full, "no chat session finished its three turns"
    for rs in full:
        assert [r["turn"] for r in rs] == [0, 1, 2]
        p = [r["prompt_tokens"] for r in rs]
        # each turn carries the previous question (40) and answer (8) forward
        assert p[1] - p[0] >= 48 and p[2] - p[1] >= 48
        assert len({r["region"] for r in rs}) == 1
    rag = [rs for rs in sessions.values() if rs[0]["workload"] == "rag"]
    for rs in rag:
        assert rs[0]["endpoint"] == "/v1/embeddings"
    # a RAG turn: embed, retrieve (100 ms), then chat with the retrieved context; a session
    # the stop cut after its embedding has no chat row, but some must have got that far
    answered = [rs for rs in rag if len(rs) > 1]
    assert answered, "no RAG turn reached its chat call"
    for rs in answered:
        assert rs[1]["endpoint"] == "/v1/chat/completions"
        assert rs[1]["prompt_tokens"] >= 230  # question + 200 tokens of retrieved context
        assert rs[1]["t_sent"] - (rs[0]["t_sent"] + rs[0]["e2e_ms"]) >= 95.0
    regions = {rs[0]["region"] for rs in sessions.values()}
    assert regions == {"eu", "us"}
    eu = sum(1 for rs in sessions.values() if rs[0]["region"] == "eu")
    assert eu / len(sessions) > 0.5


@pytest.mark.parametrize("limit", [5])
def test_users_stop_when_admission_is_refused(tmp_path, limit):
    path = tmp_path / "users.yaml"
    path.write_text(SCENARIO)
    with running_server("mock", ["mocks", "--port", "0"]) as srv:
        out = drive(
            "users", scenario=str(path), url=srv.url, users=4, seconds=3, max_requests=limit
        )
    logical = {(r["request_id"]) for r in out["records"]}
    # RAG embeddings ride on their turn's admission, so at most two logical requests per turn
    assert 0 < len(logical) <= 2 * limit
