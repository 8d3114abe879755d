"""`regions:`: where users are, their traffic shares (normalised to sum to 1), time and RTT."""

from __future__ import annotations

import dataclasses

from loadkit.scenario import units
from loadkit.scenario.build.helpers import _url
from loadkit.scenario.fields import Field
from loadkit.scenario.model import Region

SHARE_TOLERANCE = 1e-3


def _regions(field: Field | None) -> tuple[Region, ...]:
    if field is None:
        return (Region(name="local", share=1.0),)
    items = field.items(min_len=1)
    regions: list[Region] = []
    seen: dict[str, Field] = {}
    for item in items:
        m = item.mapping(
            ("name", "share", "utc_offset", "rtt", "base_url", "endpoint"), required=("name",)
        )
        if "base_url" in m and "endpoint" in m:
            m.req("endpoint").fail("give either `base_url` or `endpoint`, not both")
        name_f = m.req("name")
        name = name_f.name()
        if name in seen:
            name_f.fail(f"region {name!r} is declared twice")
        seen[name] = item
        if "share" in m:
            share = _share(m.req("share"))
        elif len(items) == 1:
            share = 1.0
        else:
            item.fail("missing required key 'share' (needed when there are several regions)")
        regions.append(
            Region(
                name=name,
                share=share,
                utc_offset_h=m.opt("utc_offset", lambda f: f.number(low=-12, high=14), 0.0),
                rtt_ms=m.opt("rtt", lambda f: f.duration(max_s=10.0), 0.0) * 1000.0,
                base_url=m.opt("base_url", _url, None),
                endpoint=m.opt("endpoint", lambda f: f.name(), None),
            )
        )
    total = sum(r.share for r in regions)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        listed = " + ".join(f"{r.share:g}" for r in regions)
        field.fail(f"shares must add up to 1 (100%), got {listed} = {total:.4g}")
    # Within the tolerance (e.g. 33% x 3): normalise so the shares sum to exactly 1.
    return tuple(dataclasses.replace(r, share=r.share / total) for r in regions)


def _share(field: Field) -> float:
    raw = field.raw()
    if field.value.kind == "scalar" and units.is_number(raw):
        return field.number(low=0, high=1, low_open=True)
    share = field.fraction()
    if share <= 0:
        field.fail(f"must be in (0, 1], got {units.describe(raw)}")
    return share
