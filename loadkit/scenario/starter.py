"""`loadkit init`: a commented starter scenario that validates and runs against the mock."""

from __future__ import annotations

import os
from pathlib import Path

from loadkit.errors import UserError

STARTER = """\
# A loadkit scenario. Check it with `loadkit validate FILE`; run it with `loadkit run FILE`.
# Every key is explained in docs/scenarios.md.
name: my-service
seed: 1                      # same seed, same requests
description: Chat users against the bundled mock; edit `target` to test a real service.

target:
  mock: hosted-api           # the bundled mock provider (no keys, no network)
  model: gpt-4o-mini
  # For a real OpenAI-compatible service instead:
  # base_url: https://api.openai.com/v1
  # api_key_env: OPENAI_API_KEY     # the NAME of the environment variable, never the key

regions:
  - name: local
    share: 100%

workloads:
  - name: chat
    kind: chat
    # Azure LLM inference trace (conversation, 2023): input p50 1020 / p90 2735 tokens,
    # output p50 129 / p90 424 tokens.
    prompt_tokens: {dist: lognormal, median: 1020, p90: 2735}
    output_tokens: {dist: lognormal, median: 129, p90: 424}
    system_prefix_tokens: 300   # shared by every request: prefix-cache hits
    turns: {dist: uniform, low: 1, high: 4}
    think_time: {dist: lognormal, median: 3s, p90: 10s}
    max_tokens: 1024

load:
  type: closed               # closed: users; open: arrival rate; trace: replay a trace
  spawn_rate: 2/s
  phases:
    - {kind: ramp, users: 10, for: 30s}
    - {kind: hold, users: 10, for: 2m}

slo:
  ttft: {p95: 1s}
  e2e: {p95: 15s}
  error_rate: 1%

budget:
  max_usd: 1.00
  max_requests: 5000
"""


def write_starter(path: str | os.PathLike[str]) -> Path:
    """Write the starter to `path`; refuses to overwrite anything."""
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{target}: is a directory; give a file name like {target}/scenario.yaml")
    if not target.parent.is_dir():
        raise UserError(f"{target}: folder {target.parent} does not exist")
    try:
        with target.open("x", encoding="utf-8") as fh:
            fh.write(STARTER)
    except FileExistsError:
        raise UserError(f"{target}: already exists; not overwriting it") from None
    except OSError as exc:
        raise UserError(f"{target}: cannot write: {exc.strerror}") from None
    return target
