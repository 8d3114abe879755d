"""Prompts in the target's own tokens: the calibration fit, its run-time use, planned vs served.

Against the mock (4 characters per token, no template) the fit is exact; against llama.cpp's
`llama-server` (a real BPE tokenizer and a ChatML template) the served prompt median must
land within 5% of the ask after calibration, and miss it without. Skips with the reason
when llama-server is not built.
"""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loadkit.analysis.sizes import planned_vs_served
from loadkit.orchestration import calibrate
from loadkit.results.reader import read_records
from loadkit.scenario import load_scenario
from loadkit.workload.sizing import Sizing
from tests.real_target import MODEL_NAME, _rt
from tests.run_helpers import run_cli, scenario, summary

# -- the fit ----------------------------------------------------------------------------------


def test_fit_recovers_scale_and_template_overhead_from_usage_answers() -> None:
    rng = np.random.default_rng(3)
    units = [64, 64, 256, 256, 1024, 1024]
    tokens = [round(0.906 * u + 10 + rng.integers(-1, 2)) for u in units]
    f = calibrate.fit(list(zip(units, tokens, strict=True)))
    assert f.scale == pytest.approx(0.906, abs=0.005)
    assert f.overhead == pytest.approx(10, abs=1.5)
    assert f.max_residual < 2


def test_fit_needs_two_sizes_and_a_growing_count() -> None:
    with pytest.raises(ValueError, match="two sizes"):
        calibrate.fit([(64, 70), (64, 71)])
    # A flat line's fitted slope is +-1e-17 depending on the platform's numpy: judged in
    # tokens (under 0.05 per synthesised token is flat), never by its sign.
    for flat in ([(64, 70), (256, 70)], [(8, 70), (1024, 71)], [(8, 71), (1024, 70)]):
        with pytest.raises(ValueError, match="do not grow"):
            calibrate.fit(flat)
    assert calibrate.fit([(8, 20), (1024, 120)]).scale == pytest.approx(100 / 1016)


def test_sizing_maps_target_tokens_to_synthesis_units() -> None:
    s = Sizing(scale=0.906, overhead_tokens=10, source="server")
    assert s.units(500) == round(500 / 0.906)
    assert s.units(0) == 0 and s.units(1) == 1
    assert Sizing().units(500) == 500
    assert Sizing.from_dict(s.to_dict()) == s
    assert Sizing.from_dict(None) == Sizing()


# -- a service without usage -------------------------------------------------------------------


class _NoUsage(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        body = json.dumps({"choices": [{"message": {"content": "x"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def no_usage_server() -> Any:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _NoUsage)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


class _ConstantUsage(_NoUsage):
    """A gateway that reports the same prompt_tokens whatever the prompt's size."""

    def do_POST(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        doc = {"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 17}}
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def constant_usage_server() -> Any:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _ConstantUsage)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


def _tokenizer_file() -> Path:
    p = _rt() / "models" / f"{MODEL_NAME}.tokenizer.json"
    if not p.is_file():
        pytest.skip(f"no local tokenizer file at {p} (built by ../shared/real-target/up.sh)")
    pytest.importorskip("tokenizers", reason="the optional `tokenizers` package is not installed")
    return p


def _http_scenario(tmp_path: Path, url: str, **target: Any) -> Any:
    path = scenario(tmp_path, "nousage", target={"base_url": url, "model": "m", **target})
    return load_scenario(path)


def test_a_service_without_usage_keeps_the_estimate_and_says_so(
    tmp_path: Path, no_usage_server: str
) -> None:
    doc = calibrate.calibrate(_http_scenario(tmp_path, no_usage_server), no_usage_server, {})
    assert doc["sizing"] == Sizing().to_dict()
    assert "reports no usage.prompt_tokens" in doc["notes"][0]
    assert "4 characters per token (estimate)" in calibrate.describe(doc)


def test_a_service_reporting_a_constant_keeps_the_estimate_with_one_warning_line(
    tmp_path: Path, constant_usage_server: str
) -> None:
    """Calibration that cannot fit falls back to the estimate; it never crashes the run."""
    sc = _http_scenario(tmp_path, constant_usage_server)
    out = io.StringIO()
    sizing = calibrate.calibrate_run(sc, {"a": constant_usage_server}, tmp_path, out)
    assert sizing == Sizing().to_dict()
    line = out.getvalue()
    assert line.count("\n") == 1, line
    assert "do not grow with the prompt (0.000 per synthesised token" in line
    assert "4 characters per token (estimate)" in line
    doc = json.loads((tmp_path / calibrate.FILE_NAME).read_text())
    assert doc["fits"] == {}


def test_a_local_tokenizer_file_calibrates_a_service_without_usage(
    tmp_path: Path, no_usage_server: str
) -> None:
    tok = _tokenizer_file()
    sc = _http_scenario(tmp_path, no_usage_server, tokenizer=str(tok))
    doc = calibrate.calibrate(sc, no_usage_server, {})
    s = doc["sizing"]
    assert s["source"] == "tokenizer"
    assert 0.7 < s["scale"] < 1.0  # BPE on English words: fewer tokens than 4-char units
    assert s["scale"] != 1.0


# -- bad tokenizer values -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "content", "message"),
    [
        ("missing.json", None, "tokenizer file not found"),
        ("tok.json", '{"not": "a tokenizer"}', "not a Hugging Face tokenizer.json"),
        ("tok.json", "garbage{", "not a Hugging Face tokenizer.json"),
    ],
)
def test_a_bad_tokenizer_is_one_line_with_file_and_line(
    tmp_path: Path, value: str, content: str | None, message: str
) -> None:
    pytest.importorskip("tokenizers", reason="the optional `tokenizers` package is not installed")
    if content is not None:
        (tmp_path / value).write_text(content)
    path = scenario(tmp_path, "badtok", target={"base_url": "http://127.0.0.1:9/v1", "model": "m"})
    text = path.read_text().replace("  model: m\n", f"  model: m\n  tokenizer: {value}\n")
    path.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "tokenizer:" in t)
    proc = run_cli("validate", str(path), timeout=60)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"error: {path}:{line}:"), err
    assert "target.tokenizer" in err and message in err, err


# -- planned against served ---------------------------------------------------------------------


def _cols(planned: list[int], served: list[int], max_tokens: int, got: int) -> dict[str, Any]:
    n = len(planned)
    return {
        "endpoint": np.array(["/v1/chat/completions"] * n),
        "outcome": np.array(["ok"] * n),
        "tokens_source": np.array(["server"] * n),
        "workload": np.array(["chat"] * n),
        "planned_prompt_tokens": np.array(planned),
        "prompt_tokens": np.array(served),
        "max_tokens": np.array([max_tokens] * n),
        "completion_tokens": np.array([got] * n),
    }


def test_planned_vs_served_adds_the_template_and_warns_over_five_percent() -> None:
    ok = planned_vs_served(_cols([500] * 5, [510] * 5, 64, 64), {"chat": 10.0})
    row = ok["workloads"]["chat"]
    assert row["prompt"]["planned_median"] == 510 and row["prompt"]["diff_share"] == 0
    assert row["completion"]["served_median"] == 64
    assert ok["warnings"] == []
    bad = planned_vs_served(_cols([500] * 5, [463] * 5, 64, 30), {"chat": 10.0})
    w = bad["warnings"]
    assert len(w) == 2
    assert "prompt tokens served (median 463) differ from planned (510) by -9.2%" in w[0]
    assert "completion tokens" in w[1]


# -- whole runs ----------------------------------------------------------------------------------


def test_a_mock_run_is_calibrated_and_compares_planned_with_served(tmp_path: Path) -> None:
    chat = {
        "name": "chat",
        "kind": "chat",
        "prompt_tokens": 300,
        "output_tokens": 8,
        "max_tokens": 8,
        "system_prefix_tokens": 40,
        "turns": 2,
        "think_time": "0s",
    }
    path = scenario(tmp_path, "cal", workloads=[chat])
    out = tmp_path / "run"
    proc = run_cli("run", str(path), "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "calibration: 1.000 target tokens per synthesised token" in proc.stdout
    cal = json.loads((out / "calibration.json").read_text())
    assert cal["sizing"] == {"scale": 1.0, "overhead_tokens": 0.0, "source": "server"}
    rec = read_records(out / "requests.csv")
    planned = rec["planned_prompt_tokens"]
    assert (planned > 0).all()
    # The mock counts 4 characters per token: planned content == what it served, history too.
    assert np.array_equal(planned, rec["prompt_tokens"])
    assert (rec["turn"] == 1).any()
    s = summary(out)
    assert s["calibration"]["sizing"]["source"] == "server"
    row = s["planned_vs_served"]["workloads"]["chat"]
    assert row["prompt"]["diff_share"] == 0 and not row["prompt"]["warn"]
    assert s["planned_vs_served"]["warnings"] == []
    html = (out / "report.html").read_text()
    assert "Planned against served" in html


SIZES = (100, 500, 2000)


def _llama_run(tmp_path: Path, url: str, name: str, *flags: str) -> tuple[Path, str]:
    workloads = [
        {
            "name": f"p{n}",
            "kind": "chat",
            "prompt_tokens": n,
            "output_tokens": 1,
            "max_tokens": 1,
            "stream": False,
        }
        for n in SIZES
    ]
    path = scenario(
        tmp_path,
        name,
        target={"base_url": url, "model": MODEL_NAME},
        workloads=workloads,
        load={"type": "open", "process": "constant", "phases": [{"rate": "2/s", "for": "9s"}]},
    )
    out = tmp_path / name
    proc = run_cli("run", str(path), "--out", str(out), *flags, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout


def _medians(out: Path) -> dict[int, float]:
    rec = read_records(out / "requests.csv")
    ok = rec["outcome"].astype(str) == "ok"
    wl = rec["workload"].astype(str)
    return {n: float(np.median(rec["prompt_tokens"][ok & (wl == f"p{n}")])) for n in SIZES}


def test_llama_server_prompts_land_within_five_percent_after_calibration(
    tmp_path: Path, llama_server: str
) -> None:
    out, stdout = _llama_run(tmp_path, llama_server, "calibrated")
    cal = json.loads((out / "calibration.json").read_text())["sizing"]
    assert cal["source"] == "server"
    assert 0.8 < cal["scale"] < 1.0  # its BPE counts fewer tokens than 4-character units
    assert 5 <= cal["overhead_tokens"] <= 15  # ChatML: 10 for a one-message chat
    served = _medians(out)
    print("calibrated", cal, served)
    for n in SIZES:  # the service's count of content + its template
        assert served[n] == pytest.approx(n + cal["overhead_tokens"], rel=0.05), (n, served)
    assert served[500] == pytest.approx(500, rel=0.05)  # the "done when"
    s = summary(out)
    assert s["planned_vs_served"]["warnings"] == [], s["planned_vs_served"]
    assert "warning: workload" not in stdout


def test_llama_server_without_calibration_misses_and_is_warned_about(
    tmp_path: Path, llama_server: str
) -> None:
    out, stdout = _llama_run(tmp_path, llama_server, "uncalibrated", "--no-calibrate")
    served = _medians(out)
    print("uncalibrated", served)
    assert served[2000] < 0.95 * 2000
    s = summary(out)
    assert "--no-calibrate" in s["calibration"]["notes"][0]
    assert any("workload p2000: prompt tokens" in w for w in s["planned_vs_served"]["warnings"])
    assert "warning: workload p2000: prompt tokens served" in stdout


# -- loadkit validate --calibration ---------------------------------------------------------------


def test_validate_shows_planned_tokens_in_the_target_units_of_an_earlier_run(
    tmp_path: Path,
) -> None:
    chat = {"name": "chat", "kind": "chat", "prompt_tokens": 500, "output_tokens": 8}
    path = scenario(
        tmp_path,
        "v",
        workloads=[chat],
        load={"type": "open", "process": "constant", "phases": [{"rate": "10/s", "for": "10s"}]},
    )
    run_dir = tmp_path / "earlier"
    run_dir.mkdir()
    fits = {"chat": {"scale": 0.9, "overhead_tokens": 10.0, "points": []}}
    sizing = {"scale": 0.9, "overhead_tokens": 10.0, "source": "server"}
    (run_dir / "calibration.json").write_text(json.dumps({"fits": fits, "sizing": sizing}))
    proc = run_cli("validate", str(path), "--calibration", str(run_dir), timeout=60)
    assert proc.returncode == 0, proc.stderr
    section = proc.stdout.split("in the target's tokens", 1)[1]
    line = next(x for x in section.splitlines() if x.strip().startswith("chat "))
    requested, served = (float(v.replace(",", "")) for v in line.split()[1:3])
    assert requested == pytest.approx(100 * 500, rel=0.02)  # 100 requests of 500 tokens
    assert served == pytest.approx(requested + 100 * 10, rel=0.001)  # + the template per call
    assert "0.900 target tokens per synthesised token" in proc.stdout
    missing = run_cli("validate", str(path), "--calibration", str(tmp_path / "nope"), timeout=60)
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error: --calibration")
