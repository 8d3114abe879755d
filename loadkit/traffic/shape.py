"""The scenario's load phases as a timeline, and its compression by `--duration`.

Closed-loop phases (`ramp`, `hold`, `step`, `spike`) become a piecewise-linear user-count
curve; Locust's LoadTestShape asks it for a target every second. `--duration D` multiplies
every time on the scenario's timeline (phases, daily curve span, fault windows, open-loop
rate phases) by one factor `D / scenario duration`, so the run keeps its shape: the same
ramps, peaks and outage windows, only shorter. Physical times (think time, latencies,
timeouts) are not compressed: they belong to the users and the service, not the timeline.
Open-loop rates keep their value (requests/s), so a compressed run sends fewer requests at
the same intensity.

Pure functions here; `shape_class()` imports Locust lazily, so importing this module does not
monkey-patch the interpreter with gevent.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

PHASE_KINDS = ("ramp", "hold", "step", "spike")


class _UserPhaseLike(Protocol):
    kind: str
    duration_s: float
    users: int


@dataclass(frozen=True, slots=True)
class Segment:
    """Users go linearly from `users_start` to `users_end` over [t_start_s, t_end_s)."""

    t_start_s: float
    t_end_s: float
    users_start: float
    users_end: float
    kind: str

    @property
    def slope(self) -> float:
        span = self.t_end_s - self.t_start_s
        return (self.users_end - self.users_start) / span if span > 0 else 0.0


@dataclass(frozen=True, slots=True)
class UserProfile:
    """The closed-loop user count over the (compressed) run."""

    segments: tuple[Segment, ...]
    spawn_rate: float

    @property
    def duration_s(self) -> float:
        return self.segments[-1].t_end_s if self.segments else 0.0

    @property
    def peak_users(self) -> int:
        if not self.segments:
            return 0
        return round(max(max(s.users_start, s.users_end) for s in self.segments))


def time_scale(scenario_duration_s: float, duration_s: float | None) -> float:
    """Factor that maps scenario time to run time (1.0 without `--duration`)."""
    if duration_s is None:
        return 1.0
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise ValueError(f"--duration must be a positive duration, got {duration_s!r}")
    if scenario_duration_s <= 0:
        raise ValueError("the scenario has no duration to compress")
    return duration_s / scenario_duration_s


def user_profile(
    phases: Sequence[_UserPhaseLike],
    spawn_rate: float | None,
    scale: float = 1.0,
    users_factor: float = 1.0,
) -> UserProfile:
    """Closed-loop phases -> segments, durations multiplied by `scale`, users by `users_factor`.

    ramp: linear from the current level to `users`; hold and step: jump to `users` and stay;
    spike: jump to `users` for the phase, then back to the level before it.
    """
    if scale <= 0:
        raise ValueError(f"time scale must be positive, got {scale}")
    segments: list[Segment] = []
    t = 0.0
    level = 0.0
    for phase in phases:
        if phase.kind not in PHASE_KINDS:
            raise ValueError(f"unknown phase kind {phase.kind!r}; expected one of {PHASE_KINDS}")
        dur = float(phase.duration_s) * scale
        target = _scaled_users(phase.users, users_factor)
        if phase.kind == "ramp":
            segments.append(Segment(t, t + dur, level, target, "ramp"))
            level = target
        elif phase.kind == "spike":
            segments.append(Segment(t, t + dur, target, target, "spike"))
        else:
            segments.append(Segment(t, t + dur, target, target, phase.kind))
            level = target
        t += dur
    rate = float(spawn_rate) if spawn_rate and spawn_rate > 0 else 0.0
    return UserProfile(tuple(segments), rate)


def _scaled_users(users: int, factor: float) -> float:
    if users <= 0:
        return 0.0
    return float(max(1, round(users * factor)))


def users_factor_for(peak_users: int, users_override: int | None) -> float:
    """`--users N` sets the peak to N; every phase keeps its proportion of the peak."""
    if users_override is None:
        return 1.0
    if users_override < 1:
        raise ValueError(f"--users must be at least 1, got {users_override}")
    if peak_users <= 0:
        return 1.0
    return users_override / peak_users


def tick_at(profile: UserProfile, t_s: float) -> tuple[int, float] | None:
    """What the LoadTestShape returns at run time `t_s`: (users, spawn rate), None at the end."""
    for seg in profile.segments:
        if seg.t_start_s <= t_s < seg.t_end_s:
            frac = (t_s - seg.t_start_s) / (seg.t_end_s - seg.t_start_s)
            users = seg.users_start + frac * (seg.users_end - seg.users_start)
            if seg.kind == "ramp":
                # Ask one tick (1 s) ahead so the ramp never lags behind the curve.
                ahead = min(seg.users_end, users + seg.slope) if seg.slope > 0 else users
                rate = max(abs(seg.slope), 1.0)
                return round(ahead), rate
            # Jumps: the scenario's spawn rate, or (unset) the whole jump within a second.
            rate = profile.spawn_rate or max(users, 1.0)
            return round(users), rate
    return None


def compress_times(items: Sequence[Any], scale: float, fields: Sequence[str]) -> tuple[Any, ...]:
    """Frozen dataclasses with the named time fields multiplied by `scale` (fault windows...)."""
    out = []
    for item in items:
        changes = {f: getattr(item, f) * scale for f in fields if getattr(item, f) is not None}
        out.append(dataclasses.replace(item, **changes))
    return tuple(out)


def shape_class(
    timeline: Callable[[float], tuple[int, float] | tuple[int, float, list[Any]] | None],
    on_end: Callable[[], None] | None = None,
    name: str = "LoadkitShape",
) -> type:
    """A Locust LoadTestShape subclass asking `timeline(run_time_s)` every tick.

    `on_end` runs in the shape greenlet once the timeline is over (or stop was requested),
    before Locust quits: the runner uses it to stop the users and drain records first.
    """
    from locust import LoadTestShape

    def tick(self: Any) -> Any:
        result = timeline(self.get_run_time())
        if result is None and on_end is not None and not getattr(self, "_ended", False):
            self._ended = True
            on_end()
        return result

    return type(name, (LoadTestShape,), {"tick": tick, "abstract": False})
