"""``PUBLISH_TO_COMMIT_SECONDS``: a histogram filled a batch at a time, exposed at scrape.

``prometheus_client.Histogram.observe`` takes a lock and looks up a bucket for every value,
about 2.5 µs each: at the ingest's 30,000 records a second, most of a tenth of a core. The
ingest bins a batch's waits itself (``usage_metrics.tally``) and adds the counts here once.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from monitoring import metrics as names

PUBLISH_TO_COMMIT_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0,
)  # fmt: skip
"""Upper bounds, from a live record's milliseconds to an outbox replayed after a day offline."""


class LatencyHistogram(Collector):
    """A histogram of seconds whose buckets are filled in bulk; ``le`` bounds as Prometheus's."""

    def __init__(self, bounds: Sequence[float] = PUBLISH_TO_COMMIT_BUCKETS_S) -> None:
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()  # a scrape may come from another thread

    def add(self, counts: Sequence[int], total_s: float) -> None:
        """Add values binned by ``bisect_left(bounds, value)``, whose sum is ``total_s``.

        ``counts`` holds one count per bucket, not cumulative, the +Inf bucket's last.
        """
        if len(counts) != len(self._counts):
            msg = f"{len(counts)} bucket counts for a histogram of {len(self._counts)} buckets"
            raise ValueError(msg)
        with self._lock:
            self._counts = [mine + more for mine, more in zip(self._counts, counts, strict=True)]
            self._sum += total_s

    def observe_all(self, values_s: Iterable[float]) -> None:
        """Count each value into the first bucket whose upper bound it does not exceed."""
        counts = [0] * len(self._counts)
        total = 0.0
        for value in values_s:
            counts[bisect_left(self.bounds, value)] += 1
            total += value
        self.add(counts, total)

    def collect(self) -> Iterator[Metric]:
        spec = names.PUBLISH_TO_COMMIT_SECONDS
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(spec.name, spec.help, buckets=buckets, sum_value=total)
