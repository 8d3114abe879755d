"""Garbage-collector settings for a load-generator process.

With 1,000 streaming users a Locust process ran about two full collections per 20 s window,
each about 70 ms of CPU with pauses up to 145 ms; a stream whose first token arrived during a
pause was timestamped late. Freezing what exists once users are spawned (it is never garbage)
and collecting the young generation less often cut GC CPU about 20-fold and the longest pause
to about 20 ms (bench/bench_loadgen.py, in one run).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def quiet_gc() -> None:
    """Move every live object to the permanent generation and collect less eagerly."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
