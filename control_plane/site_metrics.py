"""The fleet's gauges, computed at scrape time from the fleet state and nothing else.

``FleetCollector`` (``metrics.py``) calls ``fleet_families`` once a scrape. It reads memory only
(the fleet state and its ``SiteFacts``): a scrape never waits on the database, and what it needs
of the database is re-read by ``site_cache.py`` when sites change and every placement refresh.

Always present, zero or not: devices by every kind, level and presence, every district of the
tree, every known peripheral fault pair (``fault_reasons.KNOWN_PAIRS``) and the backlog buckets;
so a panel or an alert reads 0, not "no data", when all is well. The ``site`` gauges
list only their worst ``TOP_SITES`` sites with a positive count.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric

from edge.protocol import DeviceKind
from monitoring import metrics as names
from monitoring.metrics import NONE

from .fault_reasons import KNOWN_PAIRS
from .fleet import Availability, FleetState
from .site_counts import (
    BACKLOG_BOUNDS,
    HALL_LEVELS,
    FleetTally,
    cumulative,
    tally,
    top_sites,
    windows_without_pad,
)
from .site_labels import SiteLabels


def fleet_families(fleet: FleetState, now: datetime) -> Iterator[Metric]:
    """Every fleet gauge at ``now``, from one look at every device."""
    closed: dict[str, bool] = {}
    counts = tally(fleet, now, closed)
    facts = fleet.site_facts

    def is_open(site: str) -> bool:
        if site not in closed:
            hours = fleet.site_hours(site)
            closed[site] = hours is not None and not hours.is_open(now)
        return not closed[site]  # hours unknown: open, as for offline terminals

    yield devices_family(counts)
    yield districts_family(counts, facts.districts)
    yield _site_family(names.SITE_DEVICES_OFFLINE, counts.offline_sites, facts.labels)
    yield faults_family(counts)
    yield site_faults_family(counts, facts.labels)
    uncovered = windows_without_pad(facts, counts.covered_windows, is_open)
    yield _site_family(names.SITE_WINDOWS_WITHOUT_PAD, uncovered, facts.labels)
    yield backlog_family(counts)


def _gauge(spec: names.MetricSpec) -> GaugeMetricFamily:
    return GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))


def devices_family(counts: FleetTally) -> GaugeMetricFamily:
    """``termfleet_devices``: every kind, hall level and presence, and any other level seen."""
    seen = {level for _, level, _ in counts.devices}
    family = _gauge(names.DEVICES)
    for kind in DeviceKind:
        for level in (*HALL_LEVELS, *sorted(seen - set(HALL_LEVELS))):
            for presence in Availability:
                value = counts.devices[kind, level, presence]
                family.add_metric([kind.value, level, presence.value], value)
    return family


def districts_family(counts: FleetTally, districts: Iterable[tuple[str, str]]) -> GaugeMetricFamily:
    """``termfleet_district_devices``: every district of the tree and (none, none), always."""
    places = {*districts, (NONE, NONE), *((c, d) for c, d, _ in counts.districts)}
    family = _gauge(names.DISTRICT_DEVICES)
    for city, district in sorted(places):
        for presence in Availability:
            value = counts.districts[city, district, presence]
            family.add_metric([city, district, presence.value], value)
    return family


def faults_family(counts: FleetTally) -> GaugeMetricFamily:
    """``termfleet_peripheral_faults``: every known (kind, reason) pair, always."""
    family = _gauge(names.PERIPHERAL_FAULTS)
    for pair in KNOWN_PAIRS:
        family.add_metric(list(pair), counts.faults[pair])
    return family


def site_faults_family(counts: FleetTally, labels: Mapping[str, SiteLabels]) -> GaugeMetricFamily:
    """The worst sites by faulty peripherals in all, each with its non-zero (kind, reason)."""
    totals = {site: sum(faults.values()) for site, faults in counts.site_faults.items()}
    family = _gauge(names.SITE_PERIPHERAL_FAULTS)
    for top in top_sites(totals, labels):
        for (kind, reason), count in sorted(counts.site_faults[top.site].items()):
            family.add_metric([top.site, *_where(top.labels), kind, reason], count)
    return family


def _site_family(
    spec: names.MetricSpec, counts: Mapping[str, int], labels: Mapping[str, SiteLabels]
) -> GaugeMetricFamily:
    """A gauge by site: the ``TOP_SITES`` worst, with their city, district and level."""
    family = _gauge(spec)
    for top in top_sites(counts, labels):
        family.add_metric([top.site, *_where(top.labels)], top.count)
    return family


def backlog_family(counts: FleetTally) -> GaugeHistogramMetricFamily:
    bounds = [*(f"{b:.1f}" for b in BACKLOG_BOUNDS), "+Inf"]  # as prometheus_client writes le
    buckets = list(zip(bounds, cumulative(counts.backlog_buckets), strict=True))
    spec = names.OUTBOX_BACKLOG
    return GaugeHistogramMetricFamily(
        spec.name, spec.help, buckets=buckets, gsum_value=counts.backlog_sum
    )


def _where(labels: SiteLabels) -> list[str]:
    return [labels.city, labels.district, labels.level]
