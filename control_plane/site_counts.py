"""Counting the fleet for its gauges: by kind and level, district, site, fault, backlog. Pure.

One scrape looks at every device once (``tally``: its availability now, its site's labels, its
peripherals and backlog) and every gauge is made from that one look, so the gauges of one scrape
agree with each other and a 100,000-terminal fleet costs one pass. Per-site counts are exposed
for the ``TOP_SITES`` worst sites only (``top_sites``): a site label on every site of a province
would be tens of thousands of series.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from edge.protocol import DeviceKind, PeripheralState
from monitoring.metrics import TOP_SITES

from .fault_reasons import fault_reason
from .fleet import Availability, DeviceState, FleetState
from .jurisdiction import Level
from .site_facts import SiteFacts
from .site_labels import UNPLACED, SiteLabels

HALL_LEVELS = (Level.DISTRICT.value, Level.TOWN.value, Level.VILLAGE.value, UNPLACED.level)
"""The hall levels every device gauge always lists; a city-level hall adds its own when seen."""
BACKLOG_BOUNDS = (0, 10, 100, 1_000, 10_000, 100_000)
"""Upper bounds (records) of the outbox backlog histogram's buckets, below +Inf."""
_ONLINE = Availability.ONLINE
_UNEXPECTED = Availability.OFFLINE_UNEXPECTED


@dataclass(frozen=True, slots=True)
class SiteCount:
    """A site's count of something, with the labels it is exposed with."""

    site: str
    labels: SiteLabels
    count: int


@dataclass(slots=True)
class FleetTally:
    """What one look at every device found."""

    devices: Counter[tuple[DeviceKind, str, Availability]] = field(default_factory=Counter)
    """By (kind, hall level, availability)."""
    districts: Counter[tuple[str, str, Availability]] = field(default_factory=Counter)
    """By (city, district, availability); unplaced devices under (none, none)."""
    offline_sites: Counter[str] = field(default_factory=Counter)
    """Placed devices unexpectedly offline, by site code."""
    faults: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Faulty peripherals of online devices, by (peripheral kind, counted reason)."""
    site_faults: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    """The same for placed devices, by site code."""
    covered_windows: set[int] = field(default_factory=set)
    """Windows an online review pad is bound to (``SiteFacts.pad_windows``)."""
    backlog_buckets: list[int] = field(default_factory=lambda: [0] * (len(BACKLOG_BOUNDS) + 1))
    """Online devices by the first backlog bound they do not exceed (the last: +Inf)."""
    backlog_sum: int = 0


def tally(fleet: FleetState, now: datetime, closed: dict[str, bool] | None = None) -> FleetTally:
    """Count every device of ``fleet`` at ``now``; ``closed`` memoizes sites' closed-ness."""
    closed = {} if closed is None else closed
    facts = fleet.site_facts
    result = FleetTally()
    for state in fleet:
        availability = fleet.effective(state, now, closed).availability
        labels = fleet.site_labels(state)
        result.devices[state.kind, labels.level, availability] += 1
        result.districts[labels.city, labels.district, availability] += 1
        if availability is _UNEXPECTED and state.site:
            result.offline_sites[state.site] += 1
        elif availability is _ONLINE:
            _count_online(result, state, facts)
    return result


def _count_online(result: FleetTally, state: DeviceState, facts: SiteFacts) -> None:
    health = state.health
    if health is None:
        return
    if health.outbox_backlog is not None:
        result.backlog_buckets[bisect_left(BACKLOG_BOUNDS, health.outbox_backlog)] += 1
        result.backlog_sum += health.outbox_backlog
    for p in health.peripherals or ():
        if p.state is not PeripheralState.OK:
            fault = (p.kind.value, fault_reason(p.kind, p.reason))
            result.faults[fault] += 1
            if state.site:
                result.site_faults.setdefault(state.site, Counter())[fault] += 1
    if state.kind is DeviceKind.REVIEW_PAD and (window := facts.pad_windows.get(state.device_id)):
        result.covered_windows.add(window)


def top_sites(
    counts: Mapping[str, int], labels: Mapping[str, SiteLabels], limit: int = TOP_SITES
) -> list[SiteCount]:
    """The ``limit`` sites with the highest positive counts, worst first, ties by site code."""
    worst = sorted((-count, site) for site, count in counts.items() if count > 0)[:limit]
    return [SiteCount(site, labels.get(site, UNPLACED), -negated) for negated, site in worst]


def windows_without_pad(
    facts: SiteFacts, covered: set[int], is_open: Callable[[str], bool]
) -> dict[str, int]:
    """Windows of open sites that no online review pad is bound to, by site code.

    A pad counts for the window it is bound to, whichever site its own placement names: the
    binding is what the window's business system prompts. The hours are asked only of sites
    with a window uncovered: most have none.
    """
    uncovered = {site: len(windows - covered) for site, windows in facts.windows.items()}
    return {site: n for site, n in uncovered.items() if n and is_open(site)}


def cumulative(buckets: Sequence[int]) -> list[int]:
    """Bucket counts made cumulative, as a histogram's ``le`` buckets are."""
    running, out = 0, []
    for count in buckets:
        running += count
        out.append(running)
    return out
