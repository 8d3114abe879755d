"""Calibration: measure the target's tokens per synthesised unit before the load starts.

`loadkit.workload.prompts` writes 4 characters per synthesis unit, the project's estimate of
a token; a real tokenizer disagrees (llama-server's BPE counts ~0.9 tokens per unit on the
word pool, cl100k ~0.8). Right after the start-up check
(`loadkit.orchestration.preflight`), `loadkit run`
sends a few synthesised prompts of known size (`SIZES` units, `REPEATS` each, `max_tokens`
1, not streamed) to the first endpoint, straight to the service (never through a drill's
chaos proxy), and fits by (weighted) least squares

    usage.prompt_tokens = scale * units + overhead

`scale` sizes every prompt of the run (`Sizing.units`); `overhead` is the per-request
template cost (llama-server's ChatML: 10 tokens for a one-message chat). The fit goes to
`calibration.json` in the run folder, `summary.json["calibration"]`
(`loadkit.orchestration.run_summary`),
and to the Locust processes through the run config (`extra["sizing"]`).

A service that reports no usage: with `target.tokenizer` (a local `tokenizer.json`) the same
prompts are counted with it (no template overhead is known then); without, prompts keep the
4-characters estimate and the summary says so. `loadkit run --no-calibrate` skips all this.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from loadkit.apis.base import Endpoint, PlannedCall
from loadkit.apis.registry import api_of
from loadkit.apis.urls import api_url
from loadkit.results.run_folder import RunFolder, safe_url
from loadkit.workload.sizing import Sizing

SIZES = (8, 64, 256, 1024)  # synthesis units per calibration prompt
REPEATS = 3
FILE_NAME = RunFolder.CALIBRATION_JSON
_STREAM = 0xCA1  # rng_for(seed, _STREAM): calibration text never repeats a run's prompts
_BODY_MAX = 1 << 20
_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
# Below this many target tokens per synthesised token the count does not grow with the
# prompt: a service (a gateway, a copilot) that reports a constant. A real tokenizer counts
# 0.7-1.3 per unit; the sign of a float slope near 0 is the platform's last bit, not the
# service's.
MIN_SCALE = 0.05


@dataclass(frozen=True)
class Fit:
    """`tokens = scale * units + overhead`, fitted by least squares on (units, tokens)."""

    scale: float
    overhead: float
    points: tuple[tuple[int, int], ...]
    max_residual: float  # tokens: the worst point's distance from the line


def fit(points: Sequence[tuple[float, float]]) -> Fit:
    """Least-squares line through (units, tokens); needs two distinct sizes."""
    x = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    if x.size < 2 or np.unique(x).size < 2:
        raise ValueError("a calibration needs prompts of at least two sizes")
    # A text's token count varies with its words, more for a longer text (variance about
    # proportional to its length): weighted least squares, so small prompts pin the overhead.
    a, b = np.polyfit(x, y, 1, w=1.0 / np.sqrt(np.maximum(x, 1.0)))
    if not (np.isfinite(a) and a >= MIN_SCALE):
        slope = f"{round(a, 3) + 0.0:.3f}" if np.isfinite(a) else f"{a}"
        raise ValueError(
            f"prompt tokens do not grow with the prompt ({slope} per synthesised token, "
            f"need >= {MIN_SCALE})"
        )
    resid = np.abs(y - (a * x + b))
    return Fit(
        scale=float(a),
        overhead=float(b),
        points=tuple((int(u), int(t)) for u, t in zip(x, y, strict=True)),
        max_residual=float(resid.max()),
    )


def _texts(seed: int) -> list[tuple[int, str]]:
    from loadkit.workload.plan import rng_for
    from loadkit.workload.prompts import text_of_tokens

    rng = rng_for(seed, _STREAM)
    return [(u, text_of_tokens(u, rng, seed)) for u in SIZES for _ in range(REPEATS)]


def measure(
    ep: Endpoint | str,
    headers: Mapping[str, str],
    model: str,
    kind: str,
    seed: int,
    timeout_s: float = 60.0,
    key: str | None = None,
) -> tuple[list[tuple[int, int]], str | None]:
    """(units, the service's prompt tokens) per calibration prompt, and why it stopped early
    (or None). Each prompt is one call in the endpoint's own API (`loadkit.apis`), its
    usage normalised to the whole prompt (cache reads and writes included)."""
    from loadkit.orchestration import probe

    if isinstance(ep, str):
        ep = Endpoint("", ep, "")
    points: list[tuple[int, int]] = []
    for units, text in _texts(seed):
        planned = PlannedCall(
            kind="chat" if kind == "chat" else "completions",
            region="",
            workload="calibration",
            model=model,
            messages=({"role": "user", "content": text},) if kind == "chat" else None,
            prompt=text if kind != "chat" else None,
            max_tokens=1,
            stream=False,
        )
        try:
            answer = probe.call(ep, planned, headers, key, timeout_s)
        except OSError as exc:
            return points, f"{safe_url(ep.base_url)} gave no answer ({getattr(exc, 'reason', exc)})"
        if answer.frame is None:
            return points, f"{safe_url(answer.url)} answered {answer.message}"
        usage = answer.frame.usage
        if usage is None or usage.prompt <= 0:
            field = "usage.prompt_tokens" if ep.api in ("openai", "azure") else "prompt usage"
            return points, f"{safe_url(answer.url)} reports no {field}"
        points.append((units, usage.prompt))
    return points, None


def count_locally(tokenizer_path: str, seed: int) -> list[tuple[int, int]]:
    """(units, tokens) of the calibration prompts counted with a local tokenizer file."""
    from loadkit.workload.tokenizer import count_tokens, load_tokenizer

    tok = load_tokenizer(tokenizer_path)
    return [(u, count_tokens(tok, text)) for u, text in _texts(seed)]


def _kinds(scenario: Any) -> list[str]:
    kinds = {"chat" if w.kind == "rag" else w.kind for w in scenario.workloads}
    return [k for k in ("chat", "completions") if k in kinds]


def calibrate(
    scenario: Any,
    endpoint: Endpoint | str,
    headers: Mapping[str, str],
    timeout_s: float = 60.0,
    key: str | None = None,
) -> dict[str, Any]:
    """The calibration document (`calibration.json`): fits per call kind and the sizing."""
    ep = endpoint if isinstance(endpoint, Endpoint) else Endpoint("", endpoint, "")
    api = api_of(ep.api)
    kinds = [k for k in _kinds(scenario) if k in api.kinds]
    doc: dict[str, Any] = {"endpoint": safe_url(ep.base_url), "sizes_units": list(SIZES)}
    if ep.api != "openai":
        doc["api"] = ep.api
    fits: dict[str, Any] = {}
    notes: list[str] = []
    for kind in kinds:
        points, why = measure(
            ep, headers, scenario.target.model, kind, scenario.seed, timeout_s, key
        )
        if why is None:
            try:
                f = fit(points)
            except ValueError as exc:
                path = api.path(ep, kind).split("?", 1)[0]
                notes.append(f"{safe_url(api_url(ep.base_url, path))}: {exc}")
                continue
            fits[kind] = {
                "scale": round(f.scale, 5),
                "overhead_tokens": round(f.overhead, 2) + 0.0,  # never -0.0
                "max_residual_tokens": round(f.max_residual, 2),
                "points": [list(p) for p in f.points],
            }
        else:
            notes.append(why)
    source = "server"
    if not fits and kinds and scenario.target.tokenizer:
        try:
            f = fit(count_locally(scenario.target.tokenizer, scenario.seed))
        except ValueError as exc:
            notes.append(f"tokenizer {scenario.target.tokenizer}: {exc}")
        else:
            fits["tokenizer"] = {
                "scale": round(f.scale, 5),
                "overhead_tokens": 0.0,  # a template's tokens are the service's, not the file's
                "points": [list(p) for p in f.points],
            }
            source = "tokenizer"
    if fits:
        first = next(iter(fits.values()))
        sizing = Sizing(first["scale"], first["overhead_tokens"], source)
    else:
        sizing = Sizing()
        notes.append("prompts sized at 4 characters per token (estimate)")
    doc.update(fits=fits, sizing=sizing.to_dict(), notes=notes)
    return doc


def calibrate_run(
    scenario: Any,
    endpoints: Mapping[str, str],
    run_dir: Path,
    out: IO[str],
    enabled: bool = True,
) -> dict[str, Any]:
    """Calibrate against the first endpoint (before any chaos proxy), write calibration.json,
    print one line; returns `Sizing.to_dict()` for the run config (`extra["sizing"]`)."""
    from loadkit.traffic.config import api_key, resolve_headers

    regions = [r for r in endpoints if r not in scenario.endpoints] or list(endpoints)
    route = min(regions, key=lambda r: endpoints[r])
    base_url = endpoints[route]
    ep = scenario.route_endpoint(route, base_url)
    if enabled:
        doc = calibrate(scenario, ep, resolve_headers(ep.headers), key=api_key(ep.key_env))
    else:
        doc = {
            "endpoint": safe_url(base_url),
            "fits": {},
            "sizing": Sizing().to_dict(),
            "notes": ["skipped (--no-calibrate): prompts sized at 4 characters per token"],
        }
    text = json.dumps(doc, indent=2) + "\n"
    RunFolder(run_dir).calibration_json.write_text(text, encoding="utf-8")
    out.write(describe(doc) + "\n")
    return doc["sizing"]


def describe(doc: Mapping[str, Any]) -> str:
    """One line for the console and the report."""
    s = doc.get("sizing") or {}
    if s.get("source") == "server":
        return (
            f"calibration: {s['scale']:.3f} target tokens per synthesised token, "
            f"{s['overhead_tokens']:+.1f} per request (template), from usage.prompt_tokens"
        )
    if s.get("source") == "tokenizer":
        return f"calibration: {s['scale']:.3f} tokens per synthesised token (local tokenizer)"
    why = "; ".join(doc.get("notes") or ()) or "not calibrated"
    return f"calibration: none: {why}"


def read(run_dir: str | Path) -> dict[str, Any] | None:
    """A run folder's calibration.json, or None."""
    p = RunFolder(Path(run_dir)).calibration_json
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def overheads(doc: Mapping[str, Any] | None) -> dict[str, float]:
    """Per call kind, the fitted template overhead (tokens per request)."""
    fits = (doc or {}).get("fits") or {}
    return {k: float(v.get("overhead_tokens", 0.0)) for k, v in fits.items() if k in _PATHS}


# -- in `loadkit validate --calibration RUN_DIR` ------------------------------------------------


def validate_lines(scenario: Any, plan: Any, run_dir: str | Path) -> list[str]:
    """The plan's prompt tokens in the target's units, from an earlier run's calibration.

    A calibrated run sizes each prompt's content to the planned tokens in the target's own
    tokenizer; the service adds its template overhead per chat/completions call.
    """
    from loadkit.errors import UserError

    doc = read(run_dir)
    if doc is None:
        raise UserError(f"--calibration {run_dir}: no {FILE_NAME} there (an earlier run folder)")
    s = Sizing.from_dict(doc.get("sizing"))
    over = overheads(doc)
    if s.source == "estimate":
        return [f"calibration {run_dir}: {describe(doc)}; the plan's figures stand as they are"]
    lines = [
        f"in the target's tokens ({describe(doc)[len('calibration: ') :]}; from {run_dir})",
        f"  {'workload':<16}{'requested':>12}{'served':>12}  (content + template per call)",
    ]
    total_req = total_srv = 0.0
    for w in scenario.workloads:
        if w.kind == "embeddings":
            continue
        c = plan.total("workload", w.name)
        per = plan.per_request.get(w.name)
        calls = c.requests / per.calls_per_turn if per is not None else c.requests
        kind = "chat" if w.kind == "rag" else w.kind
        b = over.get(kind, s.overhead_tokens)
        served = c.prompt_tokens + b * calls
        total_req += c.prompt_tokens
        total_srv += served
        lines.append(f"  {w.name:<16}{c.prompt_tokens:>12,.0f}{served:>12,.0f}")
    lines.append(f"  {'total':<16}{total_req:>12,.0f}{total_srv:>12,.0f}")
    without = total_req * s.scale + (total_srv - total_req)
    lines.append(
        f"  without calibration (4 characters per token) the service would count "
        f"about {without:,.0f}"
    )
    return lines
