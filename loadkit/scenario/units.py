"""Parsing of the scenario's unit-bearing values: durations, rates and percentages.

Each parser takes the raw YAML value and returns a float or raises `ValueError` with a
message meant for the user (the caller adds file, line and key path).
"""

from __future__ import annotations

import math
import re

# Text that looks like an API key (or a bearer token): refused wherever a scenario holds text.
KEY_LIKE = re.compile(r"(sk-|sk_|Bearer\s+\S{8,})")

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)")
_DURATION_WHOLE = re.compile(r"(?:(?:\d+(?:\.\d+)?|\.\d+)\s*(?:ms|s|m|h|d)\s*)+")

_RATE_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 1 / 60,
    "min": 1 / 60,
    "minute": 1 / 60,
    "h": 1 / 3600,
    "hr": 1 / 3600,
    "hour": 1 / 3600,
    "d": 1 / 86400,
    "day": 1 / 86400,
}
_RATE = re.compile(r"([+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?)\s*/\s*([a-z]+)")


def is_number(value: object) -> bool:
    """A YAML int or float (booleans are ints in Python but not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def describe(value: object) -> str:
    """A value as the user wrote it, short, for error messages."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, int) and value.bit_length() > 64:
        return _long_int(value)
    if is_number(value):
        return str(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


_LONG_KEEP = 20  # digits shown at each end of a long number


def shorten_digits(text: str) -> str:
    """A long run of digits as written, cut in the middle: `12345...7890 (5,000 digits)`."""
    text = text.strip()
    digits = sum(ch.isdigit() for ch in text)
    if len(text) <= 2 * _LONG_KEEP + 3:
        return text
    return f"{text[:_LONG_KEEP]}...{text[-4:]} ({digits:,} digits)"


def _long_int(value: int) -> str:
    """`str(int)` is refused past 4,300 digits (and slow long before): count them instead."""
    mag = abs(value)
    digits = max(1, int(mag.bit_length() * 0.30102999566398120))
    while mag >= 10**digits:
        digits += 1
    while digits > 1 and mag < 10 ** (digits - 1):
        digits -= 1
    if digits <= 2 * _LONG_KEEP:
        return str(value)
    head = mag // 10 ** (digits - _LONG_KEEP)
    tail = mag % 10**4
    sign = "-" if value < 0 else ""
    return f"{sign}{head}...{tail:04d} ({digits:,} digits)"


def parse_duration(value: object) -> float:
    """`90s`, `5m`, `1h30m`, `250ms` -> seconds. A bare number is an error (which unit?)."""
    if is_number(value):
        raise ValueError(
            f"a duration needs a unit, got {describe(value)} "
            f"(write {_suggest_unit(value)}, or 5m, 250ms)"
        )
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 90s, 5m or 1h30m, got {describe(value)}")
    text = value.strip()
    if text.startswith("-"):
        raise ValueError(f"must not be negative, got {describe(value)}")
    if not text or not _DURATION_WHOLE.fullmatch(text):
        raise ValueError(f"expected a duration like 90s, 5m, 1h30m or 250ms, got {describe(value)}")
    total = sum(float(num) * _DURATION_UNITS[unit] for num, unit in _DURATION_PART.findall(text))
    if not math.isfinite(total):
        raise ValueError(f"duration too large, got {describe(value)}")
    return total


def _suggest_unit(value: object) -> str:
    return f"{_as_written(value, '90')}s"


def _as_written(value: object, instead: str) -> str:
    """A number to repeat in a suggestion; an absurd one is replaced by `instead`."""
    if is_number(value) and abs(value) < 1e9:  # type: ignore[arg-type]  (False for nan, inf)
        return str(value)
    return instead


def parse_rate(value: object) -> float:
    """`12/s`, `300/min`, `5000/h` -> requests per second."""
    if is_number(value):
        raise ValueError(
            f"a rate needs a unit, got {describe(value)} "
            f"(write {_as_written(value, '12')}/s, or 300/min, 5000/h)"
        )
    if not isinstance(value, str):
        raise ValueError(f"expected a rate like 12/s, 300/min or 5000/h, got {describe(value)}")
    match = _RATE.fullmatch(value.strip().lower())
    if match is None or match.group(2) not in _RATE_UNITS:
        raise ValueError(f"expected a rate like 12/s, 300/min or 5000/h, got {describe(value)}")
    rate = float(match.group(1)) * _RATE_UNITS[match.group(2)]
    if rate < 0:
        raise ValueError(f"must not be negative, got {describe(value)}")
    if not math.isfinite(rate):
        raise ValueError(f"rate too large, got {describe(value)}")
    return rate


def parse_fraction(value: object) -> float:
    """`0.5%` or a fraction `0.005` -> 0.005; must lie in [0, 1]."""
    if is_number(value):
        frac = float(value)
        if not math.isfinite(frac) or not 0.0 <= frac <= 1.0:
            raise ValueError(
                f"must be a fraction in [0, 1] or a percentage like 0.5%, got {describe(value)}"
            )
        return frac
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            pct = float(value.strip()[:-1])
        except ValueError:
            pct = math.nan
        if not math.isfinite(pct) or not 0.0 <= pct <= 100.0:
            raise ValueError(f"must be a percentage between 0% and 100%, got {describe(value)}")
        return pct / 100.0
    raise ValueError(f"expected a percentage like 0.5% or a fraction, got {describe(value)}")


def fmt_duration(seconds: float) -> str:
    """Seconds -> the shortest readable form of the scenario syntax (`1h30m`, `250ms`)."""
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:g}ms"
    whole = round(seconds)
    if abs(seconds - whole) > 1e-9:
        if seconds < 60:
            return f"{seconds:.3g}s"
        whole = round(seconds)  # above a minute, whole seconds are precise enough to read
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    out = (f"{h}h" if h else "") + (f"{m}m" if m else "") + (f"{s}s" if s else "")
    return out or "0s"


def fmt_rate(per_s: float) -> str:
    """Requests per second -> `12/s` or `300/min` when below one per second."""
    if per_s >= 1 or per_s == 0:
        return f"{per_s:.3g}/s"
    if per_s * 60 >= 1:
        return f"{per_s * 60:.3g}/min"
    return f"{per_s * 3600:.3g}/h"
