"""Prometheus metrics of one control-plane process, in a registry of its own.

Fleet gauges are computed at scrape time from FleetState by a custom collector, so no per-device
series are ever created and nothing churns between scrapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from edge.protocol import RejectReason
from monitoring import metrics as names

from .catalog_metrics import CatalogCollector
from .fleet import FleetState
from .latency_histogram import LatencyHistogram
from .reviews.chain_check import ProblemKind
from .reviews.intake import RefusalReason
from .site_metrics import fleet_families

# The *_created series double every counter for no use on our dashboards.
disable_created_metrics()  # type: ignore[no-untyped-call]


def fleet_gauges(fleet: FleetState, now: datetime) -> list[Metric]:
    """Every gauge computed from the fleet state.

    ``site_metrics.fleet_families`` (devices by kind, level, presence and district, the worst
    sites, peripheral faults, outbox backlogs) and what online terminals can serve of their
    catalogs.
    """
    catalog = CatalogCollector(fleet, lambda: now)
    return [*fleet_families(fleet, now), *catalog.collect()]


class FleetCollector(Collector):
    """The fleet's gauges: counted at collect time, or those a scrape ``prepared`` off the loop."""

    def __init__(self, fleet: FleetState, clock: Callable[[], datetime]) -> None:
        self._fleet = fleet
        self._clock = clock
        self.prepared: list[Metric] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.prepared is not None:
            yield from self.prepared
        else:
            yield from fleet_gauges(self._fleet, self._clock())


class ControlPlaneMetrics:
    """The process's registry and the counters the ingest increments."""

    def __init__(
        self, fleet: FleetState, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # process_resident_memory_bytes, process_cpu_seconds_total …: the control plane's own
        # health dashboard (only where /proc exists; elsewhere the collector yields nothing).
        ProcessCollector(registry=self.registry)
        self._fleet = fleet
        self._clock = clock
        self._fleet_gauges = FleetCollector(fleet, clock)
        self._scrape = asyncio.Lock()
        self.registry.register(self._fleet_gauges)
        self.ingest_messages = _counter(names.INGEST_MESSAGES, self.registry)
        self.ingest_rejected = _counter(names.INGEST_REJECTED, self.registry)
        self.ingest_errors = _counter(names.INGEST_ERRORS, self.registry)
        self.ingest_records = _counter(names.INGEST_RECORDS, self.registry)
        self.ingest_commit_seconds = Histogram(
            names.INGEST_COMMIT_SECONDS.name,
            names.INGEST_COMMIT_SECONDS.help,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.registry,
        )
        for reason in RejectReason:
            self.ingest_rejected.labels(reason.value)
        # 好差评: reviews stored and refused, work orders opened, chain breaks.
        self.reviews = _counter(names.REVIEWS, self.registry)
        self.review_refusals = _counter(names.REVIEW_REFUSALS, self.registry)
        self.work_orders_opened = _counter(names.WORK_ORDERS_OPENED, self.registry)
        self.review_chain_problems = _counter(names.REVIEW_CHAIN_PROBLEMS, self.registry)
        for refusal in RefusalReason:
            self.review_refusals.labels(refusal.value)
        for kind in ProblemKind:
            self.review_chain_problems.labels(kind.value)
        # Usage of stored records and their publish→commit wait (usage_metrics.UsageCounter).
        self.transactions = _counter(names.TRANSACTIONS, self.registry)
        self.transaction_outcomes = _counter(names.TRANSACTION_OUTCOMES, self.registry)
        self.usage_events = _counter(names.USAGE_EVENTS, self.registry)
        self.printed_pages = _counter(names.PRINTED_PAGES, self.registry)
        self.publish_to_commit_seconds = LatencyHistogram()
        self.registry.register(self.publish_to_commit_seconds)
        self.mqtt_connected = Gauge(
            names.MQTT_CONNECTED.name, names.MQTT_CONNECTED.help, registry=self.registry
        )
        self.rollouts_driving = _gauge(names.ROLLOUTS_DRIVING, self.registry)
        self.chore_failures = _counter(names.CHORE_FAILURES, self.registry)
        # Provisioning: the claim service and the broker reconcile (provisioning/runner.py).
        self.enrollments = _counter(names.ENROLLMENTS, self.registry)
        self.broker_drift = _gauge(names.BROKER_DRIFT, self.registry)
        self.broker_save_failures = _counter(names.BROKER_SAVE_FAILURES, self.registry)
        self.broker_reconciles = _counter(names.BROKER_RECONCILES, self.registry)
        self._broker_file_in_step: Gauge | None = None

    async def exposition(self) -> bytes:
        """The registry in Prometheus' text format, for ``/metrics``.

        The fleet's gauges look at every terminal: about a second of CPU for 100,000 of them. They
        are counted in a thread, from a snapshot of the fleet, so that the event loop (the ingest,
        the API) keeps its turns meanwhile instead of stalling for the whole count. Scrapes take
        turns: the prepared gauges belong to one scrape at a time.
        """
        async with self._scrape:
            snapshot = self._fleet.snapshot()
            now = self._clock()
            gauges = await asyncio.to_thread(fleet_gauges, snapshot, now)
            self._fleet_gauges.prepared = gauges
            try:
                return generate_latest(self.registry)
            finally:
                self._fleet_gauges.prepared = None

    def broker_file_in_step(self) -> Gauge:
        """Made on first use: absent, not 0, where the control plane cannot read the file."""
        if self._broker_file_in_step is None:
            self._broker_file_in_step = _gauge(names.BROKER_FILE_IN_STEP, self.registry)
        return self._broker_file_in_step


def _gauge(spec: names.MetricSpec, registry: CollectorRegistry) -> Gauge:
    return Gauge(spec.name, spec.help, spec.labels, registry=registry)


def _counter(spec: names.MetricSpec, registry: CollectorRegistry) -> Counter:
    # prometheus_client appends _total itself; the spec keeps the exposed name.
    return Counter(spec.name.removesuffix("_total"), spec.help, spec.labels, registry=registry)
