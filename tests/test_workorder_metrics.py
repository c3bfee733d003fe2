"""Open and overdue work orders by hall level in the metrics, counted from a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from control_plane.db.review_models import WorkOrderRow
from control_plane.workorder_metrics import WorkOrderGauges
from edge.protocol import Rating
from tests.support.review_stand import NOW, Stand, rating, review_stand


@pytest.fixture
async def stand(database_url: str) -> AsyncIterator[Stand]:
    async with review_stand(database_url) as result:
        yield result


async def test_open_and_overdue_orders_by_level_and_every_level_present(stand: Stand) -> None:
    gauges = WorkOrderGauges(lambda: stand.now)
    stand.registry.register(gauges)
    await stand.send("pad-v1", rating(1, "C-1", Rating.DISSATISFIED))
    await stand.send("pad-v2", rating(1, "C-2", Rating.VERY_DISSATISFIED))
    await stand.send("pad-town1", rating(1, "C-3", Rating.DISSATISFIED))
    await stand.send("pad-hall", rating(1, "C-4", Rating.SATISFIED))  # no order
    await WorkOrderRow.filter(case_number="C-2").update(state="closed")
    await gauges.count()

    def sample(name: str, level: str) -> float | None:
        return stand.registry.get_sample_value(name, {"level": level})

    assert sample("termfleet_work_orders_open", "village") == 1
    assert sample("termfleet_work_orders_open", "town") == 1
    assert sample("termfleet_work_orders_open", "district") == 0
    assert sample("termfleet_work_orders_open", "none") == 0
    assert sample("termfleet_work_orders_overdue", "village") == 0
    # Due Monday 30 November (five working days); overdue from Tuesday 1 December, local.
    stand.now = NOW + timedelta(days=7)
    await gauges.count()
    assert sample("termfleet_work_orders_overdue", "village") == 0
    stand.now = NOW + timedelta(days=8)
    await gauges.count()
    assert sample("termfleet_work_orders_overdue", "village") == 1
    assert sample("termfleet_work_orders_overdue", "town") == 1
