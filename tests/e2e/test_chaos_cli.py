"""`loadkit chaos` as a user runs it: a fault file, the printed URL, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openai
import pytest

from loadkit.serving.launch import running_server
from tests.conftest import FAST_MOCK, http_request

FAULTS = """
faults:
  - id: cut-early
    kind: cut
    params: {after_tokens: 3}
    where: {model: gpt-4o-mini}
  - {id: embed-429, kind: http_error, params: {status: 429}, where: {path: /v1/embeddings}}
"""


def test_cli_with_a_fault_file_breaks_the_stream_as_configured(tmp_path: Path) -> None:
    cfg = tmp_path / "mock.yaml"
    cfg.write_text(str(FAST_MOCK).replace("'", '"'))  # a dict literal is YAML flow style
    faults = tmp_path / "faults.yaml"
    faults.write_text(FAULTS)
    with running_server("mock", ["mocks", "--port", "0", "--config", str(cfg)]) as mock:
        argv = ["loadkit.cli", "chaos", "--upstream", mock.url, "--port", "0"]
        with running_server("chaos", [*argv, "--faults", str(faults)]) as proxy:
            client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
            texts = [
                c.choices[0].delta.content
                for c in client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    max_tokens=20,
                    stream=True,
                )
                if c.choices and c.choices[0].delta.content
            ]
            assert len(texts) == 3
            # another model is not selected: whole answer
            whole = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=5
            )
            assert whole.usage.completion_tokens == 5
            with pytest.raises(openai.RateLimitError):
                client.embeddings.create(model="text-embedding-3-small", input="x")
            st = http_request("GET", proxy.url + "/chaos/status").json()
            assert {f["id"]: f["hits"] for f in st["faults"]} == {"cut-early": 1, "embed-429": 1}


@pytest.mark.parametrize(
    ("args", "content", "words"),
    [
        (["--upstream", "localhost:1"], None, "--upstream: expected an http"),
        (["--upstream", "http://x", "--region", "eu"], None, "NAME=URL"),
        (["--upstream", "http://x", "--faults", "F"], "- {kind: stall}", "faults[0]: stall"),
        (["--upstream", "http://x", "--faults", "F"], "faults: 3", "expected a list"),
        (
            ["--upstream", "http://x", "--faults", "F"],
            "- {kind: reset, id: a}\n- {kind: reset, id: a}",
            "unique",
        ),
        (["--upstream", "http://x", "--faults", "missing.yaml"], None, "cannot read"),
    ],
)
def test_cli_mistakes_are_one_line(
    tmp_path: Path, args: list[str], content: str | None, words: str
) -> None:
    if content is not None:
        (tmp_path / "F").write_text(content)
    res = subprocess.run(
        [sys.executable, "-m", "loadkit.cli", "chaos", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], res.stderr
