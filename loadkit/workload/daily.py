"""A 24-hour traffic curve per region, shifted by its UTC offset and compressed into a run.

`DailyCurve.hourly[i]` is the relative request rate during local hour [i, i+1). Values are
normalised to mean 1, so a full (compressed) day keeps the volume the base rate implies.
Between hour midpoints the curve is a periodic Catmull-Rom spline: smooth, through every
hourly value, and with the same daily mean as the hourly values (clipped at 0 where a steep
shape would overshoot below zero).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np


@dataclass(frozen=True)
class DailyCurve:
    """24 relative hourly rates (local time), normalised to mean 1."""

    hourly: tuple[float, ...]
    _h: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        h = np.asarray(self.hourly, dtype=np.float64).ravel()
        if h.size != 24:
            raise ValueError(f"a daily curve needs 24 hourly values, got {h.size}")
        if not np.all(np.isfinite(h)) or np.any(h < 0):
            raise ValueError("hourly values must be finite and >= 0")
        if h.sum() <= 0:
            raise ValueError("hourly values must not all be 0")
        h = h / h.mean()
        h.setflags(write=False)
        object.__setattr__(self, "hourly", tuple(h.tolist()))
        object.__setattr__(self, "_h", h)

    def at_local(self, local_hours: np.ndarray | float) -> np.ndarray:
        """Relative rate at local clock hours (any real number; wraps every 24 h)."""
        x = np.mod(np.asarray(local_hours, dtype=np.float64) - 0.5, 24.0)
        i = np.floor(x).astype(np.int64)
        f = x - i
        h = self._h
        p0, p1, p2, p3 = h[(i - 1) % 24], h[i % 24], h[(i + 1) % 24], h[(i + 2) % 24]
        f2 = f * f
        f3 = f2 * f
        out = 0.5 * (
            2.0 * p1
            + (p2 - p0) * f
            + (2.0 * p0 - 5.0 * p1 + 4.0 * p2 - p3) * f2
            + (3.0 * p1 - p0 - 3.0 * p2 + p3) * f3
        )
        return np.maximum(out, 0.0)

    def multiplier(self, utc_hours: np.ndarray | float, utc_offset_h: float) -> np.ndarray:
        """Relative rate at UTC hours for a region whose local time is UTC + `utc_offset_h`."""
        return self.at_local(np.asarray(utc_hours, dtype=np.float64) + float(utc_offset_h))

    def peak_local_hour(self) -> float:
        """Local hour of the highest rate (sampled every minute)."""
        grid = np.arange(0.0, 24.0, 1.0 / 60.0)
        return float(grid[int(np.argmax(self.at_local(grid)))])

    def peak_to_trough(self) -> float:
        """Highest over lowest hourly value (inf when some hour has no traffic)."""
        lo = float(self._h.min())
        return math.inf if lo == 0 else float(self._h.max()) / lo


@dataclass(frozen=True)
class DayClock:
    """Maps run time to UTC hour when a 24-hour day is compressed into `span_s` of run time.

    With `span_s=3600` a one-hour run walks through a whole day starting at `start_utc_hour`.
    """

    start_utc_hour: float = 0.0
    span_s: float = 86400.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_utc_hour) and 0.0 <= self.start_utc_hour < 24.0):
            raise ValueError(f"start_utc_hour must be in [0, 24), got {self.start_utc_hour!r}")
        if not (math.isfinite(self.span_s) and self.span_s > 0):
            raise ValueError(f"span_s must be > 0, got {self.span_s!r}")

    def utc_hour(self, t_s: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t_s, dtype=np.float64)
        return np.mod(self.start_utc_hour + 24.0 * t / self.span_s, 24.0)

    def run_time_of_utc_hour(self, utc_hour: float) -> float:
        """First run time (s) at which the clock shows `utc_hour`."""
        return ((utc_hour - self.start_utc_hour) % 24.0) / 24.0 * self.span_s

    def step_s(self, per_hour: int = 12) -> float:
        """Run-time step that samples the day `per_hour` times per simulated hour."""
        return self.span_s / (24.0 * per_hour)


# Named shapes (local time, hour 0..23). Each is normalised to mean 1 on construction.
# - business-hours: an enterprise copilot used at work: quiet at night, a morning ramp, a
#   lunch dip and an evening tail. Illustrative shape (no public hourly data), peak/trough 10.
# - conversation: consumer chat. Peak/trough ~2.2, within the ~2-2.5x measured for
#   conversation in the week-long Azure LLM inference traces of 2024
#   (Azure/AzurePublicDataset, AzureLLMInferenceTrace 2024); the timing (trough ~04:00, peak
#   mid-afternoon to evening) is assumed.
# - code: code completion. Peak/trough ~10, the weekday swing of code in the same Azure 2024
#   traces; concentrated in working hours (timing assumed).
# - flat: no daily variation.
# fmt: off
_SHAPES: Mapping[str, tuple[float, ...]] = MappingProxyType({
    "flat": (1.0,) * 24,
    "business-hours": (
        0.10, 0.10, 0.10, 0.10, 0.10, 0.12, 0.20, 0.40, 0.75, 0.95, 1.00, 0.98,
        0.80, 0.90, 1.00, 0.97, 0.90, 0.70, 0.45, 0.30, 0.22, 0.17, 0.13, 0.11,
    ),
    "conversation": (
        0.62, 0.55, 0.50, 0.46, 0.45, 0.46, 0.50, 0.57, 0.66, 0.75, 0.83, 0.89,
        0.93, 0.96, 0.98, 1.00, 1.00, 0.99, 0.97, 0.95, 0.91, 0.85, 0.77, 0.69,
    ),
    "code": (
        0.10, 0.10, 0.10, 0.10, 0.10, 0.11, 0.15, 0.30, 0.60, 0.90, 1.00, 0.98,
        0.80, 0.92, 1.00, 0.98, 0.90, 0.70, 0.45, 0.30, 0.22, 0.16, 0.13, 0.11,
    ),
})
# fmt: on


def shape_names() -> tuple[str, ...]:
    return tuple(_SHAPES)


def named_curve(name: str) -> DailyCurve:
    """A shipped daily shape by name (see the comments above for their sources)."""
    try:
        return DailyCurve(_SHAPES[name])
    except KeyError:
        raise ValueError(f"unknown daily curve {name!r}; known: {', '.join(_SHAPES)}") from None
