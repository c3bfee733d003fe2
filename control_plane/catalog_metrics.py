"""What online terminals can serve of their catalogs, as gauges computed at scrape time.

Each terminal's last heartbeat carries an ``ItemsSummary`` (kept in the fleet state with the rest
of its health); the collector sums them over the terminals that are online now, by level and by
the peripheral kind that holds items back. Every label combination is always present, zero or
not, so no series vanishes when the last printer is refilled; labels stay bounded (a handful of
levels, the peripheral kinds), per-terminal detail is in the API.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.protocol import ItemsSummary, PeripheralKind
from monitoring import metrics as names

from .fleet import Availability, FleetState

LEVELS = ("full", "query_only", "unavailable", "not_effective", "not_offered")
"""``ItemsSummary``'s counts, by the name of their field."""
LIMITED_LEVELS = ("query_only", "unavailable")


def online_summaries(fleet: FleetState, now: datetime) -> Iterator[ItemsSummary]:
    """The items summary of each terminal online at ``now`` that reported one."""
    for state in fleet:
        items = state.health.items if state.health is not None else None
        if items is not None and fleet.effective(state, now).availability is Availability.ONLINE:
            yield items


class CatalogCollector(Collector):
    """``termfleet_catalog_items`` and ``termfleet_catalog_items_unavailable`` of the fleet."""

    def __init__(self, fleet: FleetState, clock: Callable[[], datetime]) -> None:
        self._fleet = fleet
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        levels: Counter[str] = Counter()
        held_back: Counter[tuple[str, str]] = Counter()
        for items in online_summaries(self._fleet, self._clock()):
            for level in LEVELS:
                levels[level] += getattr(items, level)
            for missing in items.missing:
                held_back["query_only", missing.kind.value] += missing.query_only
                held_back["unavailable", missing.kind.value] += missing.unavailable
        spec = names.CATALOG_ITEMS
        totals = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        for level in LEVELS:
            totals.add_metric([level], levels[level])
        yield totals
        spec = names.CATALOG_ITEMS_UNAVAILABLE
        family = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        for level in LIMITED_LEVELS:
            for kind in PeripheralKind:
                family.add_metric([level, kind.value], held_back[level, kind.value])
        yield family
