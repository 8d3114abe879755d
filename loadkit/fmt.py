"""How a latency reads where people see it (reports, findings, verdicts, tables, chart axes).

A leaf module (nothing of loadkit imported) so that analysis/ and report/ share one formatter.
"""

from __future__ import annotations

import math


def fmt_ms(
    v: float | None,
    *,
    seconds: bool = True,
    tenths_s_from: float = 10_000.0,
    tenths_ms_below: float = 0.0,
    short: bool = False,
) -> str:
    """Milliseconds for people: '850 ms', '1.25 s', '12.5 s'; 'n/a' when there is no value.

    The places differ in what they need, hence the knobs: `seconds=False` keeps ms at every
    size (a table column that reads step to step); from `tenths_s_from` on, one decimal of
    a second instead of two (`math.inf`: always two); below `tenths_ms_below`, one decimal
    of a millisecond (sentences that compare small figures); `short`, no trailing zeros, for
    chart ticks at round values ('200 ms', '1 s', '2.5 s').
    """
    if v is None or not math.isfinite(v):
        return "n/a"
    size = abs(v)
    if short:
        if size >= 1000:
            return f"{v / 1000:g} s"
        return f"{v:g} ms" if size >= 1 else f"{v:.2g} ms"
    if seconds and size >= 1000:
        return f"{v / 1000:.1f} s" if size >= tenths_s_from else f"{v / 1000:.2f} s"
    return f"{v:.1f} ms" if size < tenths_ms_below else f"{v:.0f} ms"
