"""Percentiles of many groups at once, vectorised (one sort, no Python loop over groups).

Linear interpolation between order statistics, the same as `numpy.percentile`'s default,
so a group's figure equals `np.percentile(group_values, p)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PCTS: tuple[float, ...] = (50.0, 95.0, 99.0)
_LOOP_GROUPS = 4096  # up to this many groups, sort each group's slice (one call per group)


def encode(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and the sorted unique labels (`uniques[codes] == labels`)."""
    uniques, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes.astype(np.int64), uniques


def grouped_percentiles(
    codes: np.ndarray,
    values: np.ndarray,
    n_groups: int,
    pcts: Sequence[float] = PCTS,
) -> tuple[np.ndarray, np.ndarray]:
    """`(table, counts)`: table[g, j] is the pcts[j] percentile of the finite values of group g.

    Codes outside [0, n_groups) and non-finite values are ignored; empty groups give NaN.
    """
    codes = np.asarray(codes, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    keep = (codes >= 0) & (codes < n_groups) & np.isfinite(values)
    c = codes[keep]
    v = values[keep]
    counts = np.bincount(c, minlength=n_groups)[:n_groups]
    starts = np.cumsum(counts) - counts
    if n_groups <= _LOOP_GROUPS:
        # rows grouped by a stable (radix) sort of the small codes, then each group's slice
        # sorted in place: much faster than a lexsort of (value, code) on a million rows
        order = np.argsort(c.astype(np.int16 if n_groups < 2**15 else np.int32), kind="stable")
        vs = v[order]
        for g in np.flatnonzero(counts > 1).tolist():
            vs[starts[g] : starts[g] + counts[g]].sort()
    else:
        vs = v[np.lexsort((v, c))]
    table = np.full((n_groups, len(pcts)), np.nan)
    has = counts > 0
    if not has.any():
        return table, counts
    n = counts[has].astype(np.float64)
    s = starts[has]
    for j, p in enumerate(pcts):
        pos = (n - 1.0) * (float(p) / 100.0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n.astype(np.int64) - 1)
        frac = pos - lo
        table[has, j] = vs[s + lo] * (1.0 - frac) + vs[s + hi] * frac
    return table, counts


def percentiles(values: np.ndarray, pcts: Sequence[float] = PCTS) -> np.ndarray:
    """Percentiles of the finite values (NaN when there are none)."""
    v = np.asarray(values, dtype=np.float64)
    table, _ = grouped_percentiles(np.zeros(v.size, dtype=np.int64), v, 1, pcts)
    return table[0]


def ecdf(values: np.ndarray, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(x, F(x)) of the finite values, thinned to at most `max_points` quantiles for plotting."""
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        return v, v
    if v.size <= max_points:
        return v, np.arange(1, v.size + 1) / v.size
    idx = np.unique(np.linspace(0, v.size - 1, max_points).round().astype(np.int64))
    return v[idx], (idx + 1) / v.size
