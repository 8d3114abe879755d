"""Against llama.cpp's `llama-server`: forced output lengths (`extra_body: {ignore_eos:
true}`) and its prompt cache, which outlives a run (cold by default, warm on purpose).

Skips with the reason when the server is not built (`bash ../shared/real-target/up.sh`).
The figures are printed (`pytest -s`) as well as asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loadkit.results.reader import read_records
from tests.real_target import MODEL_NAME
from tests.run_helpers import run_cli, scenario, summary

WORK = {"kind": "chat", "prompt_tokens": 100, "output_tokens": 48, "max_tokens": 48}
OPEN = {"type": "open", "process": "constant", "phases": [{"rate": "6/s", "for": "8s"}]}


def _run(path: Path, out: Path) -> str:
    # a CPU llama-server on a busy 2-core machine can hold a queue at the end of the run:
    # give those requests time to finish (they are what the assertions are about)
    proc = run_cli("run", str(path), "--out", str(out), "--drain", "60s", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_ignore_eos_gets_the_requested_output_tokens(tmp_path: Path, llama_server: str) -> None:
    path = scenario(
        tmp_path,
        "forced",
        seed=301,
        target={"base_url": llama_server, "model": MODEL_NAME},
        workloads=[
            {"name": "forced", **WORK, "extra_body": {"ignore_eos": True}},
            {"name": "free", **WORK},
        ],
        load=OPEN,
    )
    out = tmp_path / "run"
    _run(path, out)
    rec = read_records(out / "requests.csv")
    ok = rec["outcome"].astype(str) == "ok"
    assert ok.all()
    assert set(rec["response_model"].astype(str)) == {MODEL_NAME}
    assert (rec["max_tokens"] == 48).all()
    share = {}
    for name in ("forced", "free"):
        m = ok & (rec["workload"].astype(str) == name)
        share[name] = float(np.mean(rec["completion_tokens"][m] == 48))
        print(f"{name}: {100 * share[name]:.0f}% of {m.sum()} answers had 48 tokens")
        assert m.sum() >= 15
    assert share["forced"] >= 0.95
    forced = ok & (rec["workload"].astype(str) == "forced")
    assert set(rec["finish_reason"][forced].astype(str)) == {"length"}
    early = summary(out)["early_stops"]["by_workload"]
    assert early["forced"]["share"] <= 0.05
    assert abs(early["free"]["share"] - (1 - share["free"])) < 0.05  # short answers = early stops


def _cached_share(out: Path) -> float:
    s = summary(out)["prompt_cache_hits"]
    rec = read_records(out / "requests.csv")
    ok = rec["outcome"].astype(str) == "ok"
    share = float(rec["cached_tokens"][ok].sum() / rec["prompt_tokens"][ok].sum())
    assert s["share"] == round(share, 4)
    return share


def test_a_rerun_is_not_served_from_the_cache_unless_warm(
    tmp_path: Path, llama_server: str
) -> None:
    common = {
        "target": {"base_url": llama_server, "model": MODEL_NAME},
        "workloads": [{"name": "chat", **WORK}],
        "load": OPEN,
    }
    cold = scenario(tmp_path, "cold", seed=302, **common)
    warm = scenario(tmp_path, "warm", seed=303, prompt_cache="warm", **common)
    shares = {}
    for name, path in (("cold1", cold), ("cold2", cold), ("warm1", warm), ("warm2", warm)):
        _run(path, tmp_path / name)
        shares[name] = _cached_share(tmp_path / name)
        print(f"{name}: {100 * shares[name]:.1f}% of prompt tokens served from the cache")
    assert summary(tmp_path / "cold2")["prompt_salt"] != summary(tmp_path / "cold1")["prompt_salt"]
    assert shares["cold2"] < 0.30
    assert shares["warm2"] > 0.50
