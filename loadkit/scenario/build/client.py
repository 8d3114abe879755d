"""`client:`: the load generator's timeouts, retries, failover order and concurrency cap."""

from __future__ import annotations

import re

from loadkit.scenario import units
from loadkit.scenario.fields import Field, hint
from loadkit.scenario.model import SDK_RETRY_STATUSES, ClientPolicy, Retries, Timeouts


def _client(field: Field | None, regions: tuple[str, ...]) -> ClientPolicy:
    if field is None:
        return ClientPolicy()
    m = field.mapping(("timeouts", "retries", "failover", "max_concurrency"))
    return ClientPolicy(
        timeouts=m.opt("timeouts", _timeouts, Timeouts()),
        retries=m.opt("retries", _retries, Retries()),
        failover=m.opt("failover", lambda f: _failover(f, regions), ()),
        max_concurrency=m.opt("max_concurrency", lambda f: f.integer(low=1, high=10_000_000), None),
    )


def _timeouts(field: Field) -> Timeouts:
    m = field.mapping(("connect", "first_token", "between_tokens", "total"))
    d = Timeouts()

    def pos(f: Field) -> float:
        return f.duration(positive=True)

    t = Timeouts(
        connect_s=m.opt("connect", pos, d.connect_s),
        first_token_s=m.opt("first_token", pos, d.first_token_s),
        between_tokens_s=m.opt("between_tokens", pos, d.between_tokens_s),
        total_s=m.opt("total", pos, d.total_s),
    )
    if "total" in m and t.total_s < t.connect_s:
        m.req("total").fail(
            f"is shorter than the connect timeout ({units.fmt_duration(t.connect_s)})"
        )
    return t


def _retries(field: Field) -> Retries:
    m = field.mapping(
        ("max", "backoff_initial", "backoff_max", "jitter", "honour_retry_after", "retry_on_status")
    )
    d = Retries()
    r = Retries(
        max_retries=m.opt("max", lambda f: f.integer(low=0, high=100), d.max_retries),
        backoff_initial_s=m.opt("backoff_initial", Field.duration, d.backoff_initial_s),
        backoff_max_s=m.opt("backoff_max", Field.duration, d.backoff_max_s),
        jitter=m.opt("jitter", Field.fraction, d.jitter),
        honour_retry_after=m.opt("honour_retry_after", Field.boolean, d.honour_retry_after),
        retry_on_status=m.opt("retry_on_status", _statuses, SDK_RETRY_STATUSES),
    )
    if r.backoff_max_s < r.backoff_initial_s:
        (m.get("backoff_max") or m.req("backoff_initial")).fail(
            f"backoff_max ({units.fmt_duration(r.backoff_max_s)}) is shorter than "
            f"backoff_initial ({units.fmt_duration(r.backoff_initial_s)})"
        )
    return r


def _statuses(field: Field) -> tuple[int, ...]:
    out: list[int] = []
    for item in field.items():
        raw = item.raw()
        if isinstance(raw, str) and re.fullmatch(r"[45]xx", raw.strip()):
            base = int(raw.strip()[0]) * 100
            out.extend(range(base, base + 100))
        else:
            if isinstance(raw, str):
                item.fail(
                    "expected a status code like 429 or a class like 5xx, "
                    f"got {units.describe(raw)}"
                )
            out.append(item.integer(low=400, high=599))
    return tuple(sorted(set(out)))


def _failover(field: Field, regions: tuple[str, ...]) -> tuple[str, ...]:
    """Regions or named endpoints (`regions` holds both names here)."""
    names: list[str] = []
    for item in field.items():
        name = item.name()
        if name not in regions:
            item.fail(
                f"unknown region or endpoint {name!r}{hint(name, regions)} "
                f"(declared: {', '.join(regions)})"
            )
        if name in names:
            item.fail(f"{name!r} is listed twice")
        names.append(name)
    return tuple(names)
