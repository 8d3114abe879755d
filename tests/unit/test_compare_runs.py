"""`loadkit compare` on record files written here: a phased series and edge cases (the real
pilot-vs-production runs are in tests/e2e/test_compare_cli.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from loadkit.cli import main as cli_main
from loadkit.results.schema import HEADER_LINE, to_csv_line
from tests.records import record


def _write_run(folder: Path, ttft: np.ndarray, failed: int = 0, scenario: str = "") -> Path:
    folder.mkdir(parents=True)
    n = ttft.size
    lines = [HEADER_LINE]
    for i in range(n):
        bad = i < failed
        rec = record(
            run_id="r",
            request_id=f"q{i}",
            attempt=1,
            session_id=f"s{i}",
            turn=1,
            endpoint="/v1/chat/completions",
            t_sent=i * 50.0,
            sched_lag_ms=0.0,
            ttft_ms=math.nan if bad else round(float(ttft[i]), 3),
            e2e_ms=round(float(ttft[i]) + 800, 3),
            itl_mean_ms=math.nan if bad else 20.0,
            itl_p99_ms=math.nan,
            itl_max_ms=math.nan,
            status=500 if bad else 200,
            outcome="http_error" if bad else "ok",
            error=("boom, with a comma" if i % 2 else "boom") if bad else "",
            completion_tokens=0 if bad else 40,
            cost_usd=0.0002,
        )
        lines.append(to_csv_line(rec))
    (folder / "requests.csv").write_text("".join(lines))
    if scenario:
        (folder / "scenario.yaml").write_text(scenario)
    return folder


SCENARIO = """
name: base
target: {mock: hosted-api, model: gpt-4o-mini}
workloads: [{name: chat, kind: chat, prompt_tokens: 100, output_tokens: 40}]
load: {type: closed, phases: [{kind: hold, users: 4, for: 1m}]}
slo: {ttft: {p95: 1s}, error_rate: 1%}
"""


def test_phased_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(4)
    runs = [
        _write_run(tmp_path / "pilot", rng.lognormal(np.log(300), 0.3, 800), 0, SCENARIO),
        _write_run(tmp_path / "one", rng.lognormal(np.log(330), 0.3, 900), 4),
        _write_run(tmp_path / "all", rng.lognormal(np.log(900), 0.5, 1500), 60),
    ]
    out = tmp_path / "cmp"
    rc = cli_main(
        [
            "compare",
            *map(str, runs),
            "--labels",
            "pilot",
            "one region",
            "all regions",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    doc = json.loads((out / "compare.json").read_text())
    rows = {(d["metric"], d["run"]): d for d in doc["deltas"]}
    assert rows[("ttft_ms.p95", "all regions")]["significant"]
    assert rows[("error_rate", "all regions")]["significant"]
    # 0.4% vs 0% of errors on 900 requests: not enough evidence
    assert not rows[("error_rate", "one region")]["significant"]
    # SLO from the baseline's scenario: TTFT 1 s per request; 4% failed + slow ones missed it
    miss = rows[("slo_miss_rate", "all regions")]
    assert miss["value"] > 0.04 and miss["significant"]
    text = "\n".join(doc["findings"])
    assert "higher in all regions than in pilot" in text
    assert "The error rate is 4.00% in all regions against 0.00% in pilot" in text
    html = (out / "compare.html").read_text()
    assert "TTFT &lt;= 1.00 s" in html or "TTFT <= 1.00 s" in html
    assert "one region" in capsys.readouterr().out
    # as a CI gate: one region is within 1.5x of the pilot, all regions is not
    gate = ["--fail-on-regression", "1.5", "--out", str(tmp_path / "gate")]
    assert cli_main(["compare", str(runs[0]), str(runs[1]), *gate]) == 0
    assert cli_main(["compare", str(runs[0]), str(runs[2]), *gate]) == 1
    err = capsys.readouterr().err
    assert "regression: p95 TTFT in all" in err and "regression: error rate in all" in err


def test_compare_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _write_run(tmp_path / "a", np.full(5, 100.0))
    assert cli_main(["compare", str(run), "--out", str(tmp_path / "o")]) == 2
    assert "at least two run folders" in capsys.readouterr().err
    rc = cli_main(["compare", str(run), str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "not a run folder" in capsys.readouterr().err
    rc = cli_main(["compare", str(run), str(run), "--labels", "x", "--out", str(tmp_path / "o")])
    assert rc == 2 and "--labels: 1 labels for 2 runs" in capsys.readouterr().err
    rc = cli_main(
        ["compare", str(run), str(run), "--workload", "rag", "--out", str(tmp_path / "o")]
    )
    assert rc == 2 and "no records to compare for workload rag" in capsys.readouterr().err


def test_compare_reads_a_truncated_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = _write_run(tmp_path / "a", rng.lognormal(5, 0.3, 200))
    b = _write_run(tmp_path / "b", rng.lognormal(5.5, 0.3, 200))
    raw = (b / "requests.csv").read_bytes()
    (b / "requests.csv").write_bytes(raw[:-40])  # a writer killed mid-line
    out = tmp_path / "o"
    assert cli_main(["compare", str(a), str(b), "--out", str(out)]) == 0
    doc = json.loads((out / "compare.json").read_text())
    assert doc["runs"][1]["requests"] == 199
    assert any("incomplete last line" in n for n in doc["runs"][1]["notes"])


@pytest.mark.charts
def test_a_run_without_successes_and_a_tiny_run(tmp_path: Path) -> None:
    base = _write_run(tmp_path / "a", np.full(50, 300.0), 0, SCENARIO)
    down = _write_run(tmp_path / "down", np.full(50, 300.0), 50)
    tiny = _write_run(tmp_path / "tiny", np.full(3, 300.0), 0)
    out = tmp_path / "o"
    assert cli_main(["compare", str(base), str(down), str(tiny), "--out", str(out)]) == 0
    doc = json.loads((out / "compare.json").read_text())
    text = "\n".join(doc["findings"])
    assert "down has no successful request: latency and cost" in text
    assert "The error rate is 100.00% in down against 0.00% in a" in text
    assert "No significant difference between down" not in text  # nothing to compare
    # identical figures are not a finding, however small the variance
    cost = [d for d in doc["deltas"] if d["run"] == "tiny" and d["metric"] == "cost_per_ok_request"]
    assert cost[0]["significant"] is False
    assert "tiny has fewer than 30 successful requests" in text
    assert (out / "charts" / "compare_headline.png").exists()
