"""Typed access to located YAML values; every mistake becomes a one-line `ScenarioError`."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn, TypeVar

from loadkit.scenario import units
from loadkit.scenario.errors import Loc, ScenarioError
from loadkit.scenario.source import Value

T = TypeVar("T")

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_KEY = re.compile(r"[A-Za-z0-9_.:/${}-]+")


class Field:
    """A value at a key path (`regions[1].share`); parses it or fails with its location."""

    __slots__ = ("loc", "path", "value")

    def __init__(self, value: Value, path: str) -> None:
        self.value = value
        self.path = path
        self.loc: Loc = value.loc

    # -- errors -------------------------------------------------------------------------
    def fail(self, message: str) -> NoReturn:
        raise ScenarioError(self.loc, self.path, message)

    def convert(self, parse: Callable[[Any], T]) -> T:
        """Run a parser from `units` (or any raising `ValueError`) on the raw scalar."""
        try:
            return parse(self.raw())
        except ValueError as exc:
            self.fail(str(exc))

    # -- shapes -------------------------------------------------------------------------
    @property
    def is_map(self) -> bool:
        return self.value.kind == "map"

    @property
    def is_seq(self) -> bool:
        return self.value.kind == "seq"

    @property
    def is_null(self) -> bool:
        return self.value.kind == "scalar" and self.value.data is None

    def raw(self) -> Any:
        if self.value.kind == "map":
            return {}  # callers that accept scalars only then report "got a mapping"
        if self.value.kind == "seq":
            return []
        return self.value.data

    def what(self) -> str:
        if self.value.kind == "map":
            return "a mapping"
        if self.value.kind == "seq":
            return "a list"
        return units.describe(self.value.data)

    def mapping(self, allowed: Iterable[str], required: Iterable[str] = ()) -> Mapping:
        if self.value.kind != "map":
            self.fail(f"expected a mapping of keys, got {self.what()}")
        m = Mapping(self)
        m.check_keys(tuple(allowed), tuple(required))
        return m

    def items(self, min_len: int = 0, max_len: int | None = None) -> list[Field]:
        if self.value.kind != "seq":
            self.fail(f"expected a list, got {self.what()}")
        fields = [Field(v, f"{self.path}[{i}]") for i, v in enumerate(self.value.data)]
        if len(fields) < min_len:
            self.fail(
                f"expected at least {min_len} item{'s' if min_len > 1 else ''}, got none"
                if not fields
                else f"expected at least {min_len} items, got {len(fields)}"
            )
        if max_len is not None and len(fields) > max_len:
            self.fail(f"expected at most {max_len} items, got {len(fields)}")
        return fields

    # -- scalars ------------------------------------------------------------------------
    def string(self, *, allow_empty: bool = False) -> str:
        data = self.raw()
        if self.value.kind != "scalar" or not isinstance(data, str):
            self.fail(f"expected text, got {self.what()}")
        if not allow_empty and not data.strip():
            self.fail("must not be empty")
        return data

    def name(self) -> str:
        """An identifier-like name (regions, workloads, fault ids)."""
        data = self.raw()
        if is_plain_int(data) and self.value.kind == "scalar":
            data = str(data)
        if self.value.kind != "scalar" or not isinstance(data, str):
            self.fail(f"expected a name, got {self.what()}")
        if not NAME_PATTERN.fullmatch(data):
            self.fail(
                "expected a name of letters, digits, '-', '_', '.' or ':', "
                f"got {units.describe(data)}"
            )
        return data

    def choice(self, options: Iterable[str]) -> str:
        opts = tuple(options)
        data = self.raw()
        if self.value.kind != "scalar" or not isinstance(data, str):
            self.fail(f"expected one of {', '.join(opts)}, got {self.what()}")
        if data not in opts:
            self.fail(
                f"expected one of {', '.join(opts)}, got {units.describe(data)}{hint(data, opts)}"
            )
        return data

    def boolean(self) -> bool:
        data = self.raw()
        if self.value.kind != "scalar" or not isinstance(data, bool):
            self.fail(f"expected true or false, got {self.what()}")
        return data

    def number(
        self,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
    ) -> float:
        data = self.raw()
        if self.value.kind != "scalar" or not units.is_number(data):
            self.fail(f"expected a number, got {self.what()}")
        x = float(data)
        if not math.isfinite(x):
            self.fail(f"expected a finite number, got {units.describe(data)}")
        check_range(self, x, low, high, low_open, high_open, units.describe(data))
        return x

    def integer(self, *, low: int | None = None, high: int | None = None) -> int:
        data = self.raw()
        if self.value.kind != "scalar" or not units.is_number(data):
            self.fail(f"expected a whole number, got {self.what()}")
        if isinstance(data, float):
            if not math.isfinite(data) or not data.is_integer():
                self.fail(f"expected a whole number, got {units.describe(data)}")
            data = int(data)
        check_range(self, data, low, high, False, False, units.describe(data))
        return int(data)

    def duration(self, *, positive: bool = False, max_s: float | None = None) -> float:
        seconds = self.convert(units.parse_duration)
        if positive and seconds <= 0:
            self.fail(f"must be longer than 0s, got {units.describe(self.raw())}")
        if max_s is not None and seconds > max_s:
            self.fail(
                f"must be at most {units.fmt_duration(max_s)}, got {units.describe(self.raw())}"
            )
        return seconds

    def rate(self) -> float:
        return self.convert(units.parse_rate)

    def fraction(self) -> float:
        return self.convert(units.parse_fraction)


def is_plain_int(data: Any) -> bool:
    return isinstance(data, int) and not isinstance(data, bool)


def check_range(
    field: Field,
    x: float,
    low: float | None,
    high: float | None,
    low_open: bool,
    high_open: bool,
    shown: str,
) -> None:
    bad_low = low is not None and (x <= low if low_open else x < low)
    bad_high = high is not None and (x >= high if high_open else x > high)
    if not (bad_low or bad_high):
        return
    if low is not None and high is not None:
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        field.fail(f"must be in {lb}{_bound(low)}, {_bound(high)}{hb}, got {shown}")
    if bad_low:
        op = ">" if low_open else ">="
        field.fail(f"must be {op} {_bound(low)}, got {shown}")
    op = "<" if high_open else "<="
    field.fail(f"must be {op} {_bound(high)}, got {shown}")


def _bound(limit: float | None) -> str:
    """A range's end as the user would write it (whole numbers exactly: 2**63 - 1)."""
    return str(limit) if isinstance(limit, int) else f"{limit:g}"


def hint(word: str, options: Iterable[str]) -> str:
    """`; did you mean 'share'?` when a close option exists, else nothing."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    if not close and isinstance(word, str):
        lowered = {o.lower(): o for o in options}
        close = [lowered[word.lower()]] if word.lower() in lowered else []
    return f"; did you mean {close[0]!r}?" if close else ""


class Mapping:
    """A mapping whose keys were checked against the allowed set."""

    def __init__(self, field: Field) -> None:
        self.field = field
        self.data: dict[str, Value] = field.value.data
        self.key_locs = field.value.key_locs

    def check_keys(self, allowed: tuple[str, ...], required: tuple[str, ...]) -> None:
        for key in self.data:
            if key not in allowed:
                loc = self.key_locs.get(key, self.field.loc)
                raise ScenarioError(
                    loc,
                    self.sub_path(key),
                    f"unknown key{hint(key, allowed)} (allowed here: {', '.join(allowed)})"
                    if not hint(key, allowed)
                    else f"unknown key{hint(key, allowed)}",
                )
        for key in required:
            if key not in self.data or _null(self.data[key]):
                if key in self.data:
                    Field(self.data[key], self.sub_path(key)).fail("must not be empty")
                self.field.fail(f"missing required key {key!r}")

    def sub_path(self, key: str) -> str:
        shown = key if _KEY.fullmatch(key) else repr(key)
        return f"{self.field.path}.{shown}" if self.field.path else shown

    def __contains__(self, key: str) -> bool:
        return key in self.data and not _null(self.data[key])

    def get(self, key: str) -> Field | None:
        """The field, or None when absent or null (a null resets an inherited value)."""
        if key not in self:
            return None
        return Field(self.data[key], self.sub_path(key))

    def req(self, key: str) -> Field:
        got = self.get(key)
        if got is None:
            self.field.fail(f"missing required key {key!r}")
        return got

    def present_keys(self) -> Iterator[str]:
        return (k for k in self.data if not _null(self.data[k]))

    def opt(self, key: str, parse: Callable[[Field], T], default: T) -> T:
        got = self.get(key)
        return default if got is None else parse(got)


def _null(value: Value) -> bool:
    return value.kind == "scalar" and value.data is None
