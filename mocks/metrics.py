"""Prometheus text exposition with vLLM's metric names, so existing vLLM dashboards work.

Histograms take a count per observation: the decode loop records one inter-token latency
per step for all sequences it advanced, which keeps metrics off the per-token hot path.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

# Bucket bounds follow vLLM's own histograms (vllm/engine/metrics.py).
TTFT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
)
ITL_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
)
E2E_BUCKETS = (
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
)


# How late each decode step started against its absolute deadline (the mock's own pacing).
LATENESS_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        if n <= 0:
            return
        self.counts[bisect_left(self.bounds, value)] += n
        self.sum += value * n
        self.count += n

    def lines(self, name: str, labels: str) -> Iterable[str]:
        cum = 0
        for bound, c in zip(self.bounds, self.counts, strict=False):
            cum += c
            yield f'{name}_bucket{{{labels},le="{bound}"}} {cum}'
        yield f'{name}_bucket{{{labels},le="+Inf"}} {self.count}'
        yield f"{name}_sum{{{labels}}} {self.sum}"
        yield f"{name}_count{{{labels}}} {self.count}"


class EngineMetrics:
    """Counters and gauges of one region's engine."""

    def __init__(self) -> None:
        self.running = 0
        self.waiting = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)
        self.step_lateness = Histogram(LATENESS_BUCKETS)


_HELP = {
    "vllm:num_requests_running": ("gauge", "Number of requests in model execution batches."),
    "vllm:num_requests_waiting": ("gauge", "Number of requests waiting to be processed."),
    "vllm:prompt_tokens_total": ("counter", "Number of prefill tokens processed."),
    "vllm:generation_tokens_total": ("counter", "Number of generation tokens processed."),
    "vllm:request_success_total": ("counter", "Count of successfully processed requests."),
    "vllm:time_to_first_token_seconds": ("histogram", "Histogram of time to first token."),
    "vllm:inter_token_latency_seconds": ("histogram", "Histogram of inter-token latency."),
    "vllm:e2e_request_latency_seconds": ("histogram", "Histogram of end to end latency."),
    "mock:decode_step_lateness_seconds": (
        "histogram",
        "How late each decode step started against its deadline (mock pacing).",
    ),
}


def render(regions: Iterable[tuple[str, str, EngineMetrics]]) -> str:
    """Text format 0.0.4 for (region, model_name, metrics) triples."""
    regions = list(regions)
    out: list[str] = []
    for name, (kind, text) in _HELP.items():
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        for region, model, m in regions:
            labels = f'model_name="{model}",region="{region}"'
            if kind == "histogram":
                attr = {
                    "vllm:time_to_first_token_seconds": "ttft",
                    "vllm:inter_token_latency_seconds": "itl",
                    "vllm:e2e_request_latency_seconds": "e2e",
                    "mock:decode_step_lateness_seconds": "step_lateness",
                }[name]
                out.extend(getattr(m, attr).lines(name, labels))
                continue
            value = {
                "vllm:num_requests_running": m.running,
                "vllm:num_requests_waiting": m.waiting,
                "vllm:prompt_tokens_total": m.prompt_tokens,
                "vllm:generation_tokens_total": m.generation_tokens,
                "vllm:request_success_total": m.success,
            }[name]
            out.append(f"{name}{{{labels}}} {value}")
    return "\n".join(out) + "\n"
