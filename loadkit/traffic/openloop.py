"""Open-loop arrivals: fire each request at its intended time, whatever the response times.

A closed-loop user waits for its answer before it asks again, so a slow service slows the
load down and hides its own latency (coordinated omission). Here the arrival times are drawn
up front (seeded; `loadkit.workload.rates`), and one scheduler greenlet per load-generator
process sleeps until each intended time and hands the request to a fresh greenlet. Nothing
the service does delays the next arrival; only the cap `max_in_flight` can: when that many
requests are outstanding the next one waits for a free slot, and its wait shows as schedule
lag (`t_sent - t_intended`) and in the latency measured from the intended time.

Every planned arrival is accounted for (`unsent`): an arrival that was due before the
schedule stopped and never got a slot is a user the service could not take (a `not_sent`
record, `loadkit.traffic.arrivals`); one not yet due when a stop came (budget, Ctrl-C) was
skipped for that reason. `cap_full_s` is how long arrivals waited for a free slot.

With several processes, process `i` of `n` fires arrivals `i, i+n, i+2n, ...` of the one
schedule, so the union is exactly the planned arrival process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Sleep in one go until this close to the intended time, then in short naps: gevent's timer
# can wake a little early (loop time is cached), and a late wake is lag we cannot undo.
_FINE_WINDOW_S = 0.002


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    planned: int
    fired: int
    refused: int  # not sent: budget reached or stop requested
    max_in_flight_seen: int
    waited_for_slot: int  # arrivals that found `max_in_flight` requests outstanding
    cap_full_s: float = 0.0  # time an arrival that was due waited for a free slot


def partition(arrivals_s: np.ndarray, index: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """This process's arrivals and their global indices (process `index` of `count`)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"bad partition {index} of {count}")
    idx = np.arange(index, arrivals_s.size, count, dtype=np.int64)
    return arrivals_s[idx], idx


def rate_phases_curve(phases: Sequence[Any], scale: float = 1.0) -> Any:
    """A RateCurve from `RatePhase(duration_s, rate_start, rate_end)`s, time scaled by `scale`."""
    from loadkit.workload.rates import RateCurve

    return RateCurve.from_phases(
        [(float(p.duration_s) * scale, float(p.rate_start), float(p.rate_end)) for p in phases]
    )


class OpenLoopScheduler:
    """Runs in a greenlet: `run()` returns when the schedule is done or `stop()` was called.

    `fire(global_index, t_intended_s)` is called in its own greenlet at the intended time; it
    must build and send the request and record it with that `t_intended`. `admit()` (the
    budget guard) is asked before each arrival; the first refusal ends the schedule.
    """

    def __init__(
        self,
        arrivals_s: np.ndarray,
        fire: Callable[[int, float], Any],
        run_t0: float,
        max_in_flight: int | None = None,
        indices: np.ndarray | None = None,
        admit: Callable[[], bool] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        import gevent.pool

        self.arrivals_s = np.asarray(arrivals_s, dtype=np.float64)
        self.indices = (
            np.arange(self.arrivals_s.size, dtype=np.int64) if indices is None else indices
        )
        self._fire = fire
        self._t0 = run_t0
        self._admit = admit
        self._clock = clock
        self._cap = max_in_flight if max_in_flight and max_in_flight > 0 else None
        self._group = gevent.pool.Pool(self._cap) if self._cap else gevent.pool.Group()
        self._stopping = False
        self._until = float("inf")
        self.handed_over = 0  # arrivals at or after a `cut`
        self.fired = 0
        self.refused = 0
        self.waited_for_slot = 0
        self.max_seen = 0
        self.cap_full_s = 0.0
        self.next = 0  # the position of the next arrival not yet fired (nor handed over)
        self.stopped_at_s: float | None = None  # run clock when the schedule was stopped
        self.refused_at: int | None = None  # the position the budget guard refused

    @property
    def in_flight(self) -> int:
        return len(self._group)

    def stop(self) -> None:
        """No new arrivals after this; in-flight requests carry on (see `drain`)."""
        if not self._stopping:
            self.stopped_at_s = self._clock() - self._t0
        self._stopping = True

    def unsent(self) -> tuple[list[tuple[int, float]], int]:
        """Arrivals never fired: (global index, intended s) of those due before the stop (they
        waited for a slot), and how many were not yet due (or refused by the budget guard)."""
        end = self.arrivals_s.size - self.handed_over
        if self._until != float("inf"):
            # a cut while the schedule waited for a slot: the arrivals from the cut on were
            # handed to another process, even if this loop never reached them
            end = min(end, int(np.searchsorted(self.arrivals_s, self._until, side="left")))
        rest = range(self.next, end)
        if not rest:
            return [], 0
        at = self.stopped_at_s if self.stopped_at_s is not None else self._clock() - self._t0
        due = [
            (int(self.indices[n]), float(self.arrivals_s[n]))
            for n in rest
            if self.arrivals_s[n] < at and n != self.refused_at
        ]
        return due, len(rest) - len(due)

    def cut(self, t_s: float) -> None:
        """No arrivals intended at or after `t_s`: a new assignment hands them to others."""
        self._until = min(self._until, t_s)

    def run(self) -> SchedulerStats:
        import gevent

        clock, t0 = self._clock, self._t0
        arrivals = self.arrivals_s.tolist()
        indices = self.indices.tolist()
        for n, (t_s, gi) in enumerate(zip(arrivals, indices, strict=True)):
            self.next = n
            if self._stopping:
                self.refused += len(arrivals) - n
                break
            if t_s >= self._until:
                self.handed_over += len(arrivals) - n
                break
            delay = t0 + t_s - clock()
            if delay > _FINE_WINDOW_S:
                gevent.sleep(delay - _FINE_WINDOW_S)
            while not self._stopping and (delay := t0 + t_s - clock()) > 0:
                gevent.sleep(min(delay, 0.0005))
            if self._stopping:
                self.refused += len(arrivals) - n
                break
            if t_s >= self._until:
                self.handed_over += len(arrivals) - n
                break
            if self._admit is not None and not self._admit():
                self.stopped_at_s = clock() - t0
                self.refused_at = n
                self._stopping = True
                self.refused += len(arrivals) - n
                break
            if self._cap and len(self._group) >= self._cap:
                self.waited_for_slot += 1
                if not self._wait_for_slot():
                    self.refused += len(arrivals) - n
                    break
            self._group.spawn(self._fire, gi, t_s)
            self.fired += 1
            self.next = n + 1
            self.max_seen = max(self.max_seen, len(self._group))
        return self.stats()

    def _wait_for_slot(self) -> bool:
        """Wait while the cap is full; False when the schedule was stopped meanwhile."""
        start = self._clock()
        try:
            while not self._stopping and len(self._group) >= (self._cap or 0):
                self._group.wait_available(timeout=0.05)
        finally:
            self.cap_full_s += self._clock() - start
        return not self._stopping

    def drain(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for in-flight requests, then kill the rest; returns killed."""
        self._group.join(timeout=max(timeout_s, 0.0))
        left = len(self._group)
        if left:
            self._group.kill(block=True, timeout=5.0)
        return left

    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            planned=int(self.arrivals_s.size),
            fired=self.fired,
            refused=self.refused,
            max_in_flight_seen=self.max_seen,
            waited_for_slot=self.waited_for_slot,
            cap_full_s=self.cap_full_s,
        )
