"""Helpers for the `loadkit run` tests: write a scenario, run the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

# The mock's default profile made fast and steady: runs stay short, schedule lag is the client's.
FAST_OVERRIDES: dict[str, Any] = {
    "prefill_overhead_ms": 5,
    "decode_step_ms": 2,
    "jitter": {"sigma": 0.0, "step_sigma": 0.0, "tail_prob": 0.0},
}


def scenario(tmp: Path, name: str = "t", **top: Any) -> Path:
    """A scenario file: single region on the fast mock, one short chat workload, `top` merged."""
    doc: dict[str, Any] = {
        "name": name,
        "seed": 11,
        "target": {"mock": "hosted-api", "model": "gpt-4o-mini", "overrides": FAST_OVERRIDES},
        "regions": [{"name": "local", "share": "100%"}],
        "workloads": [
            {
                "name": "chat",
                "kind": "chat",
                "prompt_tokens": 40,
                "output_tokens": 8,
                "stream": True,
            }
        ],
        "load": {"type": "open", "phases": [{"rate": "20/s", "for": "3s"}]},
    }
    doc.update(top)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def loadkit_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "loadkit.cli", *args]


def run_cli(
    *args: str, timeout: float = 180, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        loadkit_cmd(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def pids_with(text: str) -> list[int]:
    """PIDs of the processes whose command line holds `text` (left-over run processes)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids
