"""Open and overdue work orders by hall level, as gauges: counted by a chore, shown at scrape.

The counts need the database, which a scrape cannot wait on, so a chore counts them every
``COUNT_INTERVAL_S`` and the collector shows the last counts. Every level is always present,
zero or not; the labels are the sites' levels (and ``none`` for orders at no site).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitoring import metrics as names

from .db import DATABASE_ERRORS
from .db.models import Site
from .db.review_models import WorkOrderRow
from .db.whole import whole
from .jurisdiction import Level
from .review_ingest import NO_LEVEL
from .reviews.workorders import DEFAULT_ZONE
from .workorder_queries import FINAL, overdue

log = logging.getLogger(__name__)

COUNT_INTERVAL_S = 60.0
LEVELS = (*(level.value for level in Level), NO_LEVEL)


class WorkOrderGauges(Collector):
    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self.open: Counter[str] = Counter()
        self.overdue: Counter[str] = Counter()

    async def count(self) -> None:
        """Count open and overdue orders by level now (on the local date)."""
        today = self._clock().astimezone(DEFAULT_ZONE).date()
        levels = dict(await Site.all().values_list("id", "level"))
        open_sites = await WorkOrderRow.exclude(state__in=FINAL).values_list("site_id", flat=True)
        late_sites = await WorkOrderRow.filter(overdue(today)).values_list("site_id", flat=True)
        self.open = Counter(levels.get(site, NO_LEVEL) for site in open_sites)
        self.overdue = Counter(levels.get(site, NO_LEVEL) for site in late_sites)

    def collect(self) -> Iterator[Metric]:
        for spec, counts in (
            (names.WORK_ORDERS_OPEN, self.open),
            (names.WORK_ORDERS_OVERDUE, self.overdue),
        ):
            family = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
            for level in sorted({*LEVELS, *counts}):
                family.add_metric([level], counts.get(level, 0))
            yield family

    async def run(self) -> None:
        while True:
            try:
                await whole(self.count())
            except DATABASE_ERRORS as exc:
                log.warning("could not count work orders: %s", exc)
            await asyncio.sleep(COUNT_INTERVAL_S)
