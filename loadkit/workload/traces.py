"""Request traces: readers for public trace formats and the transforms a replay needs.

Formats (column names as published):
- Azure LLM inference trace CSV (Azure/AzurePublicDataset): `TIMESTAMP, ContextTokens,
  GeneratedTokens`; timestamps like `2023-11-16 18:15:46.6805900`.
- Mooncake JSONL (kvcache-ai/Mooncake): `timestamp` (ms), `input_length`, `output_length`,
  `hash_ids` (ids of shared prefix blocks; equal ids mean equal prompt prefixes).
- BurstGPT CSV (HPMLL/BurstGPT): `Timestamp` (s), `Model`, `Request tokens`, `Response tokens`,
  `Total tokens`, `Log Type`; rows with 0 response tokens were failures.

Arrival times become seconds from the first request (kept to the nanosecond the format gives),
rows are ordered by time (stable), and token counts are kept as exact integers, so a replay
reproduces the trace's count, gaps and token percentiles exactly.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from loadkit.errors import UserError


@dataclass(frozen=True, eq=False)
class Trace:
    """One row per request; every array has the same length, rows sorted by `t_s`."""

    t_s: np.ndarray  # float64 seconds from the first request
    input_tokens: np.ndarray  # int64
    output_tokens: np.ndarray  # int64
    failed: np.ndarray  # bool: the request failed in the original system
    hash_ids: tuple[tuple[int, ...], ...] | None = None  # Mooncake prefix blocks per row
    model: np.ndarray | None = None  # str per row (BurstGPT)
    region: np.ndarray | None = None  # int64 region index per row, after assign_regions
    source: str = ""

    def __post_init__(self) -> None:
        n = self.t_s.shape[0]
        for name in ("input_tokens", "output_tokens", "failed", "model", "region"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n,):
                raise ValueError(f"{name} has shape {arr.shape}, expected ({n},)")
        if self.hash_ids is not None and len(self.hash_ids) != n:
            raise ValueError(f"hash_ids has {len(self.hash_ids)} rows, expected {n}")

    def __len__(self) -> int:
        return int(self.t_s.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1] - self.t_s[0]) if len(self) else 0.0

    def mean_rate(self) -> float:
        """Requests per second between the first and the last arrival."""
        return (len(self) - 1) / self.duration_s if len(self) > 1 and self.duration_s > 0 else 0.0

    def interarrival_cv(self) -> float:
        gaps = np.diff(self.t_s)
        return float(gaps.std() / gaps.mean()) if gaps.size and gaps.mean() > 0 else math.nan

    # -- transforms (each returns a new Trace) -----------------------------------------------

    def take(self, idx: np.ndarray) -> Trace:
        """Rows `idx` (indices or a boolean mask), in that order."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return Trace(
            t_s=self.t_s[idx],
            input_tokens=self.input_tokens[idx],
            output_tokens=self.output_tokens[idx],
            failed=self.failed[idx],
            hash_ids=None if self.hash_ids is None else tuple(self.hash_ids[i] for i in idx),
            model=None if self.model is None else self.model[idx],
            region=None if self.region is None else self.region[idx],
            source=self.source,
        )

    def ok(self) -> Trace:
        """Only the rows that succeeded in the original system."""
        return self.take(~self.failed)

    def time_scale(self, k: float) -> Trace:
        """Speed up by `k` (k=2 replays in half the time, at twice the rate)."""
        if not (math.isfinite(k) and k > 0):
            raise ValueError(f"time scale must be > 0, got {k!r}")
        return replace(self, t_s=self.t_s / k)

    def rate_scale(self, k: float, rng: np.random.Generator) -> Trace:
        """Scale the request count by `k`: k<1 keeps each row with probability k; k>1 adds
        floor(k)-1 copies of each row plus one more with probability frac(k).

        A copy arrives at a uniform random time between its row and the next arrival, so
        bursts stay bursts and quiet periods stay quiet; copies keep tokens and hash_ids.
        """
        if not (math.isfinite(k) and k > 0):
            raise ValueError(f"rate scale must be > 0, got {k!r}")
        n = len(self)
        if k <= 1:
            return self.take(rng.uniform(size=n) < k)
        whole = math.floor(k)
        copies = np.full(n, whole, dtype=np.int64) + (rng.uniform(size=n) < (k - whole))
        src = np.repeat(np.arange(n), copies)
        first = np.ones(src.size, dtype=bool)
        first[1:] = src[1:] != src[:-1]
        gaps = np.diff(self.t_s, append=self.t_s[-1] if n else 0.0)
        if n > 1:
            gaps[-1] = float(np.median(gaps[:-1]))
        t = self.t_s[src] + np.where(first, 0.0, rng.uniform(size=src.size) * gaps[src])
        out = self.take(src)
        order = np.argsort(t, kind="stable")
        return replace(out.take(order), t_s=t[order])

    def window(self, start_s: float, end_s: float | None = None) -> Trace:
        """Rows with start_s <= t_s < end_s, shifted so that `start_s` becomes 0."""
        end = math.inf if end_s is None else end_s
        if not (start_s >= 0 and end > start_s):
            raise ValueError(f"window must have 0 <= start < end, got [{start_s}, {end_s})")
        sel = self.take((self.t_s >= start_s) & (self.t_s < end))
        return replace(sel, t_s=sel.t_s - start_s)

    def assign_regions(self, shares: Sequence[float], rng: np.random.Generator) -> Trace:
        from loadkit.workload.regions import assign_regions

        return replace(self, region=assign_regions(shares, len(self), rng))


# -- readers -----------------------------------------------------------------------------------


def _int_column(values: list[str], name: str, path: str, first_line: int) -> np.ndarray:
    """Parse non-negative integers; on failure name the first bad line."""
    try:
        arr = np.array(values, dtype=np.int64)
        if np.all(arr >= 0):
            return arr
    except (ValueError, OverflowError, TypeError):
        pass
    for i, v in enumerate(values):
        try:
            ok = int(v.strip()) >= 0
        except ValueError:
            ok = False
        if not ok:
            raise UserError(
                f"{path}:{first_line + i}: {name}: expected a non-negative integer, got {v!r}"
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _float_column(values: list[str], name: str, path: str, first_line: int) -> np.ndarray:
    try:
        arr = np.array(values, dtype=np.float64)
        if np.all(np.isfinite(arr)):
            return arr
    except (ValueError, TypeError):
        pass
    for i, v in enumerate(values):
        try:
            ok = math.isfinite(float(v))
        except (ValueError, TypeError):
            ok = False
        if not ok:
            raise UserError(f"{path}:{first_line + i}: {name}: expected a number, got {v!r}")
    raise AssertionError("unreachable")  # pragma: no cover


def _open(path: str | Path):
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such trace file")
    return p.open(newline="", encoding="utf-8")


def _read_csv(path: str | Path, needed: Sequence[str]) -> tuple[dict[str, list[str]], int]:
    """Columns by name; every data row must have the header's width."""
    with _open(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise UserError(f"{path}:1: empty file, expected a header with {', '.join(needed)}")
        header = [h.strip() for h in header]
        missing = [c for c in needed if c not in header]
        if missing:
            raise UserError(
                f"{path}:1: missing column(s) {', '.join(missing)}; header is {', '.join(header)}"
            )
        rows = list(reader)
    width = len(header)
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # trailing blank lines
    for i, row in enumerate(rows):
        if len(row) != width:
            raise UserError(f"{path}:{i + 2}: expected {width} fields, got {len(row)}")
    if not rows:
        raise UserError(f"{path}: no requests in the trace")
    cols = {name: [row[j] for row in rows] for j, name in enumerate(header) if name in needed}
    return cols, len(rows)


def _finish(
    path: str | Path,
    t_abs: np.ndarray,
    inp: np.ndarray,
    out: np.ndarray,
    failed: np.ndarray,
    hash_ids: list[tuple[int, ...]] | None = None,
    model: np.ndarray | None = None,
) -> Trace:
    order = np.argsort(t_abs, kind="stable")
    t_abs = t_abs[order]
    t0 = t_abs[0]
    if t_abs.dtype.kind == "M":
        t_s = (t_abs - t0).astype("timedelta64[ns]").astype(np.int64) / 1e9
    else:
        t_s = (t_abs - t0).astype(np.float64)
    return Trace(
        t_s=t_s,
        input_tokens=inp[order],
        output_tokens=out[order],
        failed=failed[order],
        hash_ids=None if hash_ids is None else tuple(hash_ids[i] for i in order),
        model=None if model is None else model[order],
        source=str(path),
    )


def _strip_utc_offsets(stamps: list[str]) -> tuple[list[str], np.ndarray | None]:
    """Drop `Z` / `+hh:mm` suffixes (the 2024 release writes `+00:00`); return the offsets."""

    def has_offset(s: str) -> bool:
        return s.endswith("Z") or (len(s) > 16 and s[-6] in "+-" and s[-3] == ":")

    if not any(has_offset(s) for s in stamps):
        return stamps, None
    out, minutes = [], np.zeros(len(stamps), dtype=np.int64)
    for i, s in enumerate(stamps):
        if s.endswith("Z"):
            s = s[:-1]
        elif has_offset(s) and s[-5:-3].isdigit() and s[-2:].isdigit():
            sign = -1 if s[-6] == "-" else 1
            minutes[i] = sign * (int(s[-5:-3]) * 60 + int(s[-2:]))
            s = s[:-6]
        out.append(s)
    return out, minutes


def read_azure(path: str | Path) -> Trace:
    """Azure LLM inference trace CSV (2023 and 2024 releases; a UTC offset is honoured)."""
    cols, n = _read_csv(path, ("TIMESTAMP", "ContextTokens", "GeneratedTokens"))
    stamps, offset_min = _strip_utc_offsets(
        [s.strip().replace(" ", "T", 1) for s in cols["TIMESTAMP"]]
    )
    try:
        t_abs = np.array(stamps, dtype="datetime64[ns]")
    except ValueError:
        for i, s in enumerate(stamps):
            try:
                np.datetime64(s, "ns")
            except ValueError:
                raise UserError(
                    f"{path}:{i + 2}: TIMESTAMP: expected a date and time like "
                    f"2023-11-16 18:15:46.68, got {cols['TIMESTAMP'][i]!r}"
                ) from None
        raise
    if np.any(np.isnat(t_abs)):
        i = int(np.flatnonzero(np.isnat(t_abs))[0])
        raise UserError(f"{path}:{i + 2}: TIMESTAMP: expected a date and time, got {stamps[i]!r}")
    if offset_min is not None:  # local time minus its offset is UTC
        t_abs = t_abs - (offset_min * 60_000_000_000).astype("timedelta64[ns]")
    inp = _int_column(cols["ContextTokens"], "ContextTokens", str(path), 2)
    out = _int_column(cols["GeneratedTokens"], "GeneratedTokens", str(path), 2)
    return _finish(path, t_abs, inp, out, np.zeros(n, dtype=bool))


def read_burstgpt(path: str | Path) -> Trace:
    """BurstGPT CSV; rows with 0 response tokens are marked failed."""
    needed = ("Timestamp", "Model", "Request tokens", "Response tokens")
    cols, _ = _read_csv(path, needed)
    t = _float_column(cols["Timestamp"], "Timestamp", str(path), 2)
    inp = _int_column(cols["Request tokens"], "Request tokens", str(path), 2)
    out = _int_column(cols["Response tokens"], "Response tokens", str(path), 2)
    model = np.array([m.strip() for m in cols["Model"]], dtype=object)
    return _finish(path, t, inp, out, out == 0, model=model)


def read_mooncake(path: str | Path) -> Trace:
    """Mooncake JSONL: one JSON object per line, timestamps in milliseconds."""
    ts: list[float] = []
    inp: list[int] = []
    out: list[int] = []
    hashes: list[tuple[int, ...]] = []
    lines: list[int] = []
    with _open(path) as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object per line")
            for key in ("timestamp", "input_length", "output_length"):
                if key not in obj:
                    raise UserError(f"{path}:{lineno}: {key}: missing")
            h = obj.get("hash_ids", [])
            if not isinstance(h, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) for x in h
            ):
                raise UserError(f"{path}:{lineno}: hash_ids: expected a list of integers")
            stamp = obj["timestamp"]
            if isinstance(stamp, bool) or not isinstance(stamp, int | float):
                raise UserError(f"{path}:{lineno}: timestamp: expected a number, got {stamp!r}")
            for key in ("input_length", "output_length"):
                v = obj[key]
                if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                    raise UserError(
                        f"{path}:{lineno}: {key}: expected a non-negative integer, got {v!r}"
                    )
            ts.append(stamp)
            inp.append(obj["input_length"])
            out.append(obj["output_length"])
            hashes.append(tuple(h))
            lines.append(lineno)
    if not ts:
        raise UserError(f"{path}: no requests in the trace")
    t_ms = np.array(ts, dtype=np.float64)
    if not np.all(np.isfinite(t_ms)):
        i = int(np.flatnonzero(~np.isfinite(t_ms))[0])
        raise UserError(f"{path}:{lines[i]}: timestamp: expected a finite number")
    ia = np.array(inp, dtype=np.int64)
    oa = np.array(out, dtype=np.int64)
    return _finish(path, t_ms / 1000.0, ia, oa, np.zeros(len(ts), dtype=bool), hash_ids=hashes)


# -- the formats -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceReader:
    """One published format: its reader and how to recognise its files when none is named."""

    read: Callable[[str | Path], Trace]
    title: str  # as its publishers spell it, for help texts
    suffixes: tuple[str, ...] = ()  # file name endings that identify it
    header: tuple[str, ...] = ()  # CSV columns that, all present in the header, identify it


# The one list of trace formats: the scenario's `format:` choices, the CLI's `--format` and
# the guess below all come from it (the order is the order they are listed and tried in).
TRACE_FORMATS: Mapping[str, TraceReader] = {
    "azure": TraceReader(read_azure, "Azure", header=("TIMESTAMP", "ContextTokens")),
    "mooncake": TraceReader(read_mooncake, "Mooncake", suffixes=(".jsonl", ".json")),
    "burstgpt": TraceReader(
        read_burstgpt, "BurstGPT", header=("Request tokens", "Response tokens")
    ),
}
FORMATS: tuple[str, ...] = tuple(TRACE_FORMATS)


def guess_format(path: str | Path) -> str:
    """From the file name (.jsonl: mooncake) or the CSV header."""
    p = Path(path)
    for name, reader in TRACE_FORMATS.items():
        if p.suffix.lower() in reader.suffixes:
            return name
    with _open(p) as f:
        header = f.readline()
    for name, reader in TRACE_FORMATS.items():
        if reader.header and all(column in header for column in reader.header):
            return name
    raise UserError(
        f"{path}:1: cannot tell the trace format from the header; give the format: "
        f"{', '.join(FORMATS[:-1])} or {FORMATS[-1]}"
    )


def read_trace(path: str | Path, format: str | None = None) -> Trace:
    """Read a trace in `format` (a name in FORMATS), guessed when None."""
    fmt = guess_format(path) if format is None else format
    if fmt not in TRACE_FORMATS:
        raise UserError(f"unknown trace format {fmt!r}; known: {', '.join(FORMATS)}")
    return TRACE_FORMATS[fmt].read(path)
