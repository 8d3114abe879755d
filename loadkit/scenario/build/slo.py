"""`slo:` (percentile limits, error rate) and `abort:` (stop a run early when it breaches)."""

from __future__ import annotations

import re

from loadkit.scenario.build.helpers import _mapping_of
from loadkit.scenario.errors import ScenarioError
from loadkit.scenario.fields import Field
from loadkit.scenario.model import Abort, Slo

_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)")


def _slo(field: Field | None) -> Slo:
    if field is None:
        return Slo()
    m = field.mapping(("ttft", "itl", "e2e", "error_rate"))
    return Slo(
        ttft_ms=m.opt("ttft", _thresholds, {}),
        itl_ms=m.opt("itl", _thresholds, {}),
        e2e_ms=m.opt("e2e", _thresholds, {}),
        error_rate=m.opt("error_rate", Field.fraction, None),
    )


def _abort(field: Field | None) -> Abort | None:
    if field is None:
        return None
    m = field.mapping(("error_rate", "ttft", "window", "min_requests"))
    abort = Abort(
        error_rate=m.opt("error_rate", Field.fraction, None),
        ttft_ms=m.opt("ttft", _thresholds, {}),
        window_s=m.opt("window", lambda f: f.duration(positive=True), 30.0),
        min_requests=m.opt("min_requests", lambda f: f.integer(low=1, high=10_000_000), 20),
    )
    if abort.error_rate is None and not abort.ttft_ms:
        field.fail("an abort needs `error_rate` and/or `ttft: {p95: 10s}`")
    return abort


def _thresholds(field: Field) -> dict[str, float]:
    m = _mapping_of(field, "percentile thresholds like {p95: 800ms}")
    out: dict[str, float] = {}
    for key in m.data:
        if not _PERCENTILE.fullmatch(key) or not 0 < float(key[1:]) <= 100:
            raise ScenarioError(
                m.key_locs.get(key, field.loc),
                m.sub_path(key),
                "expected a percentile like p50, p95, p99 or p99.9",
            )
        sub = m.get(key)
        if sub is None:
            continue
        out[key] = sub.duration(positive=True) * 1000.0
    return out
