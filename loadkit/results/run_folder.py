"""The run folder: one directory per run, everything a later report or comparison needs.

```
<run>/scenario.yaml       the scenario file as run, secrets redacted
<run>/environment.json    loadkit, Locust, Python, numpy versions; seed; run id; settings
<run>/requests.csv        one row per attempt (loadkit.results.schema), appended as they arrive
<run>/summary.json        the end-of-run summary (loadkit.analysis.summary) and stop reason
<run>/locust_*.csv        Locust's own CSV stats; <run>/locust.html its HTML report
<run>/locust.log          Locust's console output
<run>/run-config.json     the settings `loadkit run` hands to Locust (no secrets)
<run>/calibration.json    the prompt-size calibration (loadkit.orchestration.calibrate)
<run>/schedule.json       open loop: the planned arrivals, sent, not sent, skipped
<run>/faults.csv          a chaos drill's fault journal
<run>/report.html         the report, with <run>/charts/*.png (loadkit.report)
```

Secrets: the scenario names environment variables, never keys; still, a header value
that looks like a credential (`Authorization`, `api-key`, `token`, ...) and is not a
`${VAR}` reference, any value of the named variables, and anything shaped like an API key
are replaced by `<redacted>` before the copy is written.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from loadkit.errors import UserError

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(
    r"(authorization|api[-_]?key|token|secret|passw(or)?d|cookie|credential)", re.I
)
# Keys that name token counts or a tokenizer (max_tokens, prompt_tokens, tokenizer), not a
# credential: the scenario copy must stay runnable.
_COUNT_KEY = re.compile(r"(tokens|tokenizer)$", re.I)
_KEY_LINE = re.compile(
    r"^(?P<indent>\s*(?:-\s+)?)(?P<q>[\"']?)(?P<key>[^\s:\"'#]+)(?P=q)\s*:\s*(?P<value>\S.*)$"
)
_KEY_SHAPES = (
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),  # OpenAI-style keys
    re.compile(r"\bBearer\s+[A-Za-z0-9._\-]{16,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # AWS access key id
)
_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


@dataclass(frozen=True)
class RunFolder:
    """Paths inside one run folder: every file name a user sees is spelled here, once."""

    path: Path

    REQUESTS_CSV: ClassVar[str] = "requests.csv"
    SUMMARY_JSON: ClassVar[str] = "summary.json"
    SCENARIO_YAML: ClassVar[str] = "scenario.yaml"
    ENVIRONMENT_JSON: ClassVar[str] = "environment.json"
    RUN_CONFIG: ClassVar[str] = "run-config.json"
    CALIBRATION_JSON: ClassVar[str] = "calibration.json"
    FAULTS_CSV: ClassVar[str] = "faults.csv"
    SCHEDULE_JSON: ClassVar[str] = "schedule.json"
    FAULT_HITS_CSV: ClassVar[str] = "fault_hits.csv"
    MOCK_CONFIG: ClassVar[str] = "mock-config.yaml"
    LOCUST_PREFIX: ClassVar[str] = "locust"  # Locust's --csv prefix: locust_*.csv
    LOCUST_HTML: ClassVar[str] = "locust.html"
    LOCUST_LOG: ClassVar[str] = "locust.log"
    REPORT_HTML: ClassVar[str] = "report.html"
    CHARTS: ClassVar[str] = "charts"

    @property
    def requests_csv(self) -> Path:
        return self.path / self.REQUESTS_CSV

    @property
    def summary_json(self) -> Path:
        return self.path / self.SUMMARY_JSON

    @property
    def scenario_yaml(self) -> Path:
        return self.path / self.SCENARIO_YAML

    @property
    def environment_json(self) -> Path:
        return self.path / self.ENVIRONMENT_JSON

    @property
    def locust_csv_prefix(self) -> Path:
        return self.path / self.LOCUST_PREFIX

    @property
    def locust_html(self) -> Path:
        return self.path / self.LOCUST_HTML

    @property
    def locust_log(self) -> Path:
        return self.path / self.LOCUST_LOG

    @property
    def run_config(self) -> Path:
        """Settings handed from `loadkit run` to the locustfile (no secrets)."""
        return self.path / self.RUN_CONFIG

    @property
    def calibration_json(self) -> Path:
        """The prompt-size calibration (`loadkit.orchestration.calibrate`)."""
        return self.path / self.CALIBRATION_JSON

    @property
    def schedule_json(self) -> Path:
        """An open-loop run's planned arrivals and what became of them (`traffic.arrivals`)."""
        return self.path / self.SCHEDULE_JSON

    @property
    def faults_csv(self) -> Path:
        """A chaos drill's fault journal (`loadkit.results.faults_schema`)."""
        return self.path / self.FAULTS_CSV

    @property
    def fault_hits_csv(self) -> Path:
        """The chaos proxy's hit journal: each request a fault touched, by attempt key."""
        return self.path / self.FAULT_HITS_CSV

    @property
    def mock_config(self) -> Path:
        """The scenario's overrides of the bundled mock's profile."""
        return self.path / self.MOCK_CONFIG

    @property
    def report_html(self) -> Path:
        return self.path / self.REPORT_HTML

    @property
    def charts(self) -> Path:
        """The report's charts/*.png."""
        return self.path / self.CHARTS


def default_run_dir(results_root: Path, scenario_name: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", scenario_name).strip("-") or "run"
    path = results_root / f"{safe}-{stamp}"
    n = 2
    while path.exists():
        path = results_root / f"{safe}-{stamp}-{n}"
        n += 1
    return path


def prepare(path: Path) -> RunFolder:
    """Create the folder; refuse one that already holds a run (never mix two runs' rows)."""
    folder = RunFolder(Path(path))
    if folder.path.exists() and not folder.path.is_dir():
        raise UserError(f"--out {path}: exists and is not a folder")
    if folder.requests_csv.exists() or folder.summary_json.exists():
        raise UserError(f"--out {path}: already holds a run; choose another folder")
    try:
        folder.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {path}: cannot create it ({exc.strerror})") from None
    return folder


def redact_text(text: str, secret_values: Iterable[str] = ()) -> str:
    """The scenario text with credential-looking values and known secret values replaced."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        m = _KEY_LINE.match(body)
        key = m["key"] if m else ""
        if (
            m
            and _SECRET_KEY.search(key)
            and not key.lower().endswith("_env")
            and not _COUNT_KEY.search(key)
        ):
            value = m["value"].split(" #", 1)[0].strip().strip("\"'")
            if value and not _ENV_REF.fullmatch(value) and value not in ("null", "~"):
                body = f"{m['indent']}{m['q']}{m['key']}{m['q']}: {REDACTED}"
        line = body + line[len(line.rstrip("\r\n")) :]
        out.append(line)
    result = "".join(out)
    for pat in _KEY_SHAPES:
        result = pat.sub(REDACTED, result)
    for secret in secret_values:
        if secret and len(secret) >= 4:
            result = result.replace(secret, REDACTED)
    return result


def write_scenario_copy(folder: RunFolder, source: Path, secret_values: Iterable[str]) -> None:
    text = Path(source).read_text(encoding="utf-8", errors="replace")
    header = f"# scenario as run (from {Path(source).name}); secrets redacted\n"
    folder.scenario_yaml.write_text(header + redact_text(text, secret_values), encoding="utf-8")


def safe_url(url: str) -> str:
    """A URL without user:password@ (kept out of every file)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=host)
    return urlunsplit(parts._replace(query="", fragment="")) if parts.query else urlunsplit(parts)


def environment_info(seed: int, run_id: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Versions and settings that make a run reproducible and comparable."""
    import numpy

    from loadkit import __version__

    try:
        from importlib.metadata import version

        locust_version = version("locust")
    except Exception:  # not installed as a distribution
        locust_version = "unknown"
    return {
        "run_id": run_id,
        "seed": seed,
        "loadkit": __version__,
        "locust": locust_version,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "argv": [os.path.basename(sys.argv[0]), *sys.argv[1:]],
        **extra,
    }


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    text = json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n"
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:  # a full disk: leave no empty .tmp behind
        tmp.unlink(missing_ok=True)
        raise


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
