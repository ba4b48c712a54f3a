"""The server's counters and histograms, in Prometheus' text exposition format (version 0.0.4).

Written by hand: four metric families do not need the ``prometheus_client`` dependency. Updates come
from the event loop and from the model's worker thread, so every change and every rendering holds a lock.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Sequence

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def size_buckets(largest: int) -> tuple[float, ...]:
    """1, 2, 4, ... up to (and including) ``largest``: the bounds of a batch-size histogram."""
    bounds, b = [], 1
    while b < largest:
        bounds.append(float(b))
        b *= 2
    return (*bounds, float(max(largest, 1)))


class Histogram:
    """Observations counted per upper bound ``le``, with their sum and count."""

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum, self.count = 0.0, 0

    def observe(self, value: float) -> None:
        index = next((i for i, b in enumerate(self.bounds) if value <= b), len(self.bounds))
        self.counts[index] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, total = [], 0
        for bound, n in zip((*self.bounds, math.inf), self.counts):
            total += n
            le = "+Inf" if bound == math.inf else format_number(bound)
            out.append(f'{name}_bucket{{le="{le}"}} {total}')
        return [*out, f"{name}_sum {format_number(self.sum)}", f"{name}_count {self.count}"]


class ServerMetrics:
    """Requests by path and status, unexpected errors, /predict latency, and model batch sizes."""

    def __init__(self, max_batch: int):
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.server_errors = 0
        self.inputs = 0
        self.latency = Histogram(LATENCY_BUCKETS)
        self.batch_inputs = Histogram(size_buckets(max_batch))
        self.batch_requests = Histogram(size_buckets(max_batch))

    def request(self, path: str, status: int, seconds: float | None = None) -> None:
        with self.lock:
            self.requests[(path, status)] += 1
            if seconds is not None:
                self.latency.observe(seconds)

    def server_error(self) -> None:
        with self.lock:
            self.server_errors += 1

    def batch(self, inputs: int, requests: int) -> None:
        with self.lock:
            self.inputs += inputs
            self.batch_inputs.observe(inputs)
            self.batch_requests.observe(requests)

    def render(self) -> str:
        with self.lock:
            lines = [
                "# HELP bertkit_requests_total HTTP requests answered, by path and status code.",
                "# TYPE bertkit_requests_total counter",
                *(
                    f'bertkit_requests_total{{path="{path}",code="{code}"}} {n}'
                    for (path, code), n in sorted(self.requests.items())
                ),
                "# HELP bertkit_server_errors_total Requests that failed with an unexpected error (500).",
                "# TYPE bertkit_server_errors_total counter",
                f"bertkit_server_errors_total {self.server_errors}",
                "# HELP bertkit_inputs_total Inputs predicted.",
                "# TYPE bertkit_inputs_total counter",
                f"bertkit_inputs_total {self.inputs}",
                "# HELP bertkit_request_duration_seconds Time to answer POST /predict, queueing included.",
                "# TYPE bertkit_request_duration_seconds histogram",
                *self.latency.lines("bertkit_request_duration_seconds"),
                "# HELP bertkit_batch_inputs Inputs per model batch.",
                "# TYPE bertkit_batch_inputs histogram",
                *self.batch_inputs.lines("bertkit_batch_inputs"),
                "# HELP bertkit_batch_requests Requests per model batch.",
                "# TYPE bertkit_batch_requests histogram",
                *self.batch_requests.lines("bertkit_batch_requests"),
            ]
        return "\n".join(lines) + "\n"


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
