"""Who goes where: users spread over regions by share, workload weights as Locust integers.

Kept free of Locust imports (Locust patches the interpreter with gevent at import), so the
policy can be checked and reused anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

WEIGHT_SCALE = 1000


class RegionPicker:
    """Deterministic spread of users over regions by share: the largest deficit goes next.

    After n users every region has within one user of share * n, whatever n is, so a
    small run (or one worker's slice of a distributed run) still honours the shares.
    """

    def __init__(self, names: Sequence[str], shares: Sequence[float]) -> None:
        if not names or len(names) != len(shares):
            raise ValueError("need one share per region and at least one region")
        total = float(sum(shares))
        if total <= 0:
            raise ValueError("region shares must add up to more than 0")
        self.names = list(names)
        self.shares = [float(s) / total for s in shares]
        self.counts = [0] * len(names)

    def next(self) -> str:
        n = sum(self.counts) + 1
        deficits = [s * n - c for s, c in zip(self.shares, self.counts, strict=True)]
        i = max(range(len(deficits)), key=deficits.__getitem__)
        self.counts[i] += 1
        return self.names[i]


def int_weights(weights: Sequence[float]) -> list[int]:
    """Locust wants integer class weights: the workloads' weights as parts of 1000 (>= 1)."""
    total = float(sum(weights)) or 1.0
    return [max(1, round(w / total * WEIGHT_SCALE)) for w in weights]
