"""The control plane's 好差评 chores, run together as one of the server's background tasks.

Case notices go out to the pads (``case_notices``), cases not rated in time get their 基本满意
default (``review_defaults``), and the pads' hash chains are checked as reviews arrive
(``review_chain_watch``), and open and overdue work orders (``workorder_metrics``) and each
hall's bad reviews of the last hour (``hall_review_metrics``) are counted for the metrics.
Each retries on database errors by itself; a cancellation (the server stopping) ends them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from .case_notices import CaseNotices
from .hall_review_metrics import HallReviewGauges
from .ingest import Ingest
from .metrics import ControlPlaneMetrics
from .review_chain_watch import ChainWatch
from .review_defaults import ReviewDefaults
from .workorder_metrics import WorkOrderGauges


class ReviewChores:
    def __init__(
        self, ingest: Ingest, metrics: ControlPlaneMetrics, clock: Callable[[], datetime]
    ) -> None:
        self.case_notices = CaseNotices(ingest, clock)
        """Also handed to the cases API, which publishes a new case's notice at once."""
        self._defaults = ReviewDefaults(clock)
        self._chain_watch = ChainWatch(metrics, clock)
        self._work_orders = WorkOrderGauges(clock)
        metrics.registry.register(self._work_orders)
        self._hall_reviews = HallReviewGauges(clock)
        metrics.registry.register(self._hall_reviews)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as chores:
            chores.create_task(self.case_notices.run(), name="case-notices")
            chores.create_task(self._defaults.run(), name="review-defaults")
            chores.create_task(self._chain_watch.run(), name="review-chains")
            chores.create_task(self._work_orders.run(), name="work-order-gauges")
            chores.create_task(self._hall_reviews.run(), name="hall-review-gauges")
