"""Bad reviews (差评) per hall in the last hour, as gauges: counted by a chore, shown at scrape.

A bad-review spike at one hall is what the alert on ``HALL_REVIEWS_LAST_HOUR`` looks for, so the
gauge lists the ``TOP_SITES`` halls with the most bad reviews stored in the last hour, each with
its bad and all reviews of that hour (``rating_class``), labelled with the hall's city, district
and level. The counts need the database, which a scrape cannot wait on: ``run`` counts every
``COUNT_INTERVAL_S`` and ``collect`` shows the last counts without touching the database.

Counted are ratings citizens gave at terminals (``source`` terminal), not voided by an upheld
appeal. The 基本满意 defaults of unrated cases are left out: they are stored when a case's rating
period ends, not when anyone rated, and would water a hall's bad share down by its unrated cases.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from tortoise.functions import Count, Min

from monitoring import metrics as names

from . import registry
from .db import DATABASE_ERRORS
from .db.models import Site
from .db.review_models import ReviewRow
from .db.whole import whole
from .jurisdiction import SEPARATOR
from .reviews.intake import BAD_RATINGS
from .site_facts import node_levels
from .site_labels import SiteLabels, site_labels

log = logging.getLogger(__name__)

COUNT_INTERVAL_S = 60.0
WINDOW = timedelta(hours=1)
IN_FLIGHT_IDS = 10_000
"""How far below the oldest review of the last window the next count starts looking (by id).

The review table has no index on ``received_at``; ids grow with the order of inserts, so each
count scans from a little below the oldest id it found in the window instead of the whole table
(which only the first count after a start reads). The margin covers ids handed to transactions
that commit later (other replicas' batches, their clocks a little apart): thousands of reviews,
where a batch holds at most hundreds.
"""
TERMINAL_SOURCE = "terminal"
BAD = frozenset(rating.value for rating in BAD_RATINGS)
RATING_CLASSES = ("bad", "all")


@dataclass(frozen=True, slots=True)
class HallCount:
    """One hall's reviews in the window, with what labels it."""

    site: str
    labels: SiteLabels
    bad: int
    all: int


def top_halls(counts: Mapping[str, tuple[int, int]], limit: int) -> list[tuple[str, int, int]]:
    """The ``limit`` halls with the most bad reviews, as (site code, bad, all). Pure.

    ``counts`` gives (bad, all) by site code. Halls without a bad review are left out; ties go
    by site code, so the same counts always list the same halls.
    """
    ranked = sorted(
        ((site, bad, total) for site, (bad, total) in counts.items() if bad > 0),
        key=lambda hall: (-hall[1], hall[0]),
    )
    return ranked[:limit]


def tally_by_site(rows: Iterable[tuple[int | None, str, int]]) -> dict[int, tuple[int, int]]:
    """(bad, all) by site id from (site id, rating, count) rows; reviews at no site dropped."""
    tally: dict[int, tuple[int, int]] = {}
    for site_id, rating, count in rows:
        if site_id is None:
            continue
        bad, total = tally.get(site_id, (0, 0))
        tally[site_id] = (bad + count if rating in BAD else bad, total + count)
    return tally


class HallReviewGauges(Collector):
    """``HALL_REVIEWS_LAST_HOUR``: the halls counted last, shown at every scrape."""

    def __init__(self, clock: Callable[[], datetime], top: int = names.TOP_SITES) -> None:
        self._clock = clock
        self._top = top
        self._floor_id = 0
        """Reviews below this id were stored before the last window (see ``IN_FLIGHT_IDS``)."""
        self.halls: list[HallCount] = []

    async def count(self) -> None:
        """Count the last hour's reviews per hall now; keep the top halls with their labels."""
        since = self._clock() - WINDOW
        rows = (
            await ReviewRow.filter(
                id__gte=self._floor_id,
                received_at__gte=since,
                source=TERMINAL_SOURCE,
                voided_at__isnull=True,
            )
            .annotate(n=Count("id"), first=Min("id"))
            .group_by("site_id", "rating")
            .values_list("site_id", "rating", "n", "first")
        )
        await self._move_floor(min((row[3] for row in rows), default=None))
        by_site = tally_by_site((site, rating, n) for site, rating, n, _first in rows)
        self.halls = await _labelled(by_site, self._top)

    async def _move_floor(self, oldest_in_window: int | None) -> None:
        if oldest_in_window is None:
            newest = await ReviewRow.all().order_by("-id").limit(1).values_list("id", flat=True)
            oldest_in_window = int(str(newest[0])) + 1 if newest else 0
        self._floor_id = max(0, oldest_in_window - IN_FLIGHT_IDS)

    def collect(self) -> Iterator[Metric]:
        spec = names.HALL_REVIEWS_LAST_HOUR
        family = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        for hall in self.halls:
            where = [hall.site, hall.labels.city, hall.labels.district, hall.labels.level]
            family.add_metric([*where, "bad"], hall.bad)
            family.add_metric([*where, "all"], hall.all)
        yield family

    async def run(self) -> None:
        while True:
            try:
                await whole(self.count())
            except DATABASE_ERRORS as exc:
                log.warning("could not count the halls' reviews: %s", exc)
            await asyncio.sleep(COUNT_INTERVAL_S)


async def _labelled(by_site: Mapping[int, tuple[int, int]], top: int) -> list[HallCount]:
    """The top halls by site code, with the city, district and level of each."""
    if not by_site:
        return []
    sites = {
        site_id: (str(code), str(level), str(path))
        for site_id, code, level, path in await Site.filter(id__in=list(by_site)).values_list(
            "id", "code", "level", "node__path"
        )
    }
    counts = {sites[site_id][0]: tally for site_id, tally in by_site.items() if site_id in sites}
    chosen = top_halls(counts, top)
    where = {code: (level, path) for code, level, path in sites.values()}
    ancestors = {
        code
        for site, _bad, _all in chosen
        for code in where[site][1].strip(SEPARATOR).split(SEPARATOR)
    }
    levels = node_levels(await registry.load_node_rows(ancestors)) if ancestors else {}
    return [
        HallCount(site, site_labels(where[site][1], where[site][0], levels), bad, total)
        for site, bad, total in chosen
    ]
