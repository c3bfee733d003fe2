"""Reviews through the ingest into a real database: one per case, refusals kept, work orders due.

No broker: messages are handed to ``Ingest.handle`` and committed with ``flush``, as the ingest's
loop does. The seed district (tests/support/stats_fixture.py) places the review pads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest

from control_plane.db.models import StoredRecord
from control_plane.db.review_models import (
    ReviewCase,
    ReviewPolicy,
    ReviewRefusal,
    ReviewRow,
    WorkOrderRow,
)
from edge.protocol import Rating
from tests.support.review_stand import NOW, Stand, rating, review_stand


@pytest.fixture
async def stand(database_url: str) -> AsyncIterator[Stand]:
    async with review_stand(database_url) as result:
        yield result


async def test_a_good_review_is_stored_where_its_pad_stands_and_opens_no_work_order(
    stand: Stand,
) -> None:
    await stand.send("pad-v1", rating(1, "C-1", Rating.SATISFIED))
    row = await ReviewRow.get(case_number="C-1")
    assert (row.source, row.device_id, row.seq, row.rating) == (
        "terminal",
        "pad-v1",
        1,
        "satisfied",
    )
    assert (row.department, row.window_number, row.staff_id) == ("GA", "03", "S-17")
    assert row.indicators == {"attitude": "satisfied"}
    assert row.rated_at == NOW
    site = await row.__class__.filter(id=row.id).values_list("site_id", flat=True)
    assert site[0] is not None
    assert await WorkOrderRow.all().count() == 0
    assert stand.metric("termfleet_reviews_total", rating="satisfied", level="village") == 1


async def test_a_bad_review_opens_a_work_order_due_in_five_working_days(stand: Stand) -> None:
    await stand.send("pad-town1", rating(1, "C-2", Rating.DISSATISFIED))
    order = await WorkOrderRow.get(case_number="C-2")
    review = await ReviewRow.get(case_number="C-2")
    assert order.review_id == review.id
    assert (order.state, order.rating, order.department) == ("to_call_back", "dissatisfied", "GA")
    # Opened Monday 23 November (local): Tue 24 .. Fri 27 are four, Monday 30 the fifth.
    assert (order.due, order.deadline_working_days, order.due_provisional) == (
        date(2026, 11, 30),
        5,
        False,
    )
    assert order.opened_at == NOW
    assert stand.metric("termfleet_work_orders_opened_total", level="town") == 1


async def test_the_nearest_policy_sets_the_deadline_over_national_day(stand: Stand) -> None:
    await ReviewPolicy.create(
        node_code="440117", deadline_working_days=15, rate_within_days=7, updated_at=NOW,
        updated_by="test",
    )  # fmt: skip
    await ReviewPolicy.create(
        node_code="440117101", deadline_working_days=3, rate_within_days=7, updated_at=NOW,
        updated_by="test",
    )  # fmt: skip
    # Tuesday 29 September 2026, local: the 30th is a working day, 1-7 October are the holiday
    # (Sunday 20 September and Saturday 10 October are make-up working days).
    stand.now = datetime(2026, 9, 29, 2, 0, tzinfo=UTC)
    await stand.send("pad-v1", rating(1, "C-3", Rating.VERY_DISSATISFIED, at=stand.now))
    await stand.send("pad-town2", rating(1, "C-4", Rating.VERY_DISSATISFIED, at=stand.now))
    # Village 440117101001 is under town 440117101 (3 days): 30 Sep, 8 Oct, 9 Oct.
    village = await WorkOrderRow.get(case_number="C-3")
    assert (village.deadline_working_days, village.due) == (3, date(2026, 10, 9))
    # Town 440117102 has none of its own: the district's 15. 30 Sep (1), 8-9 Oct (3), 10 Oct,
    # the make-up Saturday (4), 12-16 (9), 19-23 (14): the 15th is Monday 26 October.
    town = await WorkOrderRow.get(case_number="C-4")
    assert (town.deadline_working_days, town.due) == (15, date(2026, 10, 26))


async def test_a_second_rating_of_a_case_is_refused_and_kept_once(stand: Stand) -> None:
    first = rating(1, "C-5", Rating.VERY_SATISFIED)
    second = rating(2, "C-5", Rating.VERY_DISSATISFIED, prev=first.hash)
    await stand.send("pad-hall", first)
    await stand.send("pad-hall", second)
    await stand.send("pad-hall", second)  # delivered again: already decided
    await stand.send("pad-hall", first)  # the accepted one again: nothing new either
    review = await ReviewRow.get(case_number="C-5")
    assert (review.seq, review.rating) == (1, "very_satisfied")
    refusals = await ReviewRefusal.all().values("device_id", "seq", "reason", "rating")
    assert refusals == [
        {"device_id": "pad-hall", "seq": 2, "reason": "duplicate", "rating": "very_dissatisfied"}
    ]
    assert await WorkOrderRow.all().count() == 0
    assert await StoredRecord.filter(device_id="pad-hall").count() == 2
    assert stand.metric("termfleet_review_refusals_total", reason="duplicate") == 1
    assert stand.metric("termfleet_reviews_total", rating="very_satisfied", level="district") == 1


async def test_two_ratings_of_a_case_in_one_batch_keep_the_earlier(stand: Stand) -> None:
    later = rating(7, "C-6", Rating.SATISFIED, at=NOW)
    earlier = rating(8, "C-6", Rating.DISSATISFIED, at=NOW - timedelta(minutes=1))
    await stand.send("pad-v2", later, earlier)
    review = await ReviewRow.get(case_number="C-6")
    assert (review.seq, review.rating) == (8, "dissatisfied")
    assert await ReviewRefusal.filter(seq=7, reason="duplicate").count() == 1
    assert await WorkOrderRow.filter(case_number="C-6").count() == 1


async def test_a_rating_after_the_cases_rating_period_is_refused_as_late(stand: Stand) -> None:
    ended = NOW - timedelta(days=8)
    for case in ("C-7", "C-8"):
        await ReviewCase.create(
            case_number=case, device_id="pad-v3", ended_at=ended, notified_at=ended,
            rate_by=ended + timedelta(days=7),
        )  # fmt: skip
    # C-8 already has its default 基本满意.
    await ReviewRow.create(
        case_number="C-8", source="default", rating="basic", channel="window_pad",
        rated_at=ended + timedelta(days=7), received_at=ended + timedelta(days=7),
        chain_checked=True,
    )  # fmt: skip
    await stand.send("pad-v3", rating(1, "C-7", Rating.VERY_DISSATISFIED))
    # Rated in time (day 6) but arrived after the default was recorded: late too.
    in_time = ended + timedelta(days=6)
    await stand.send("pad-v3", rating(2, "C-8", Rating.SATISFIED, at=in_time))
    # Rated within the period and nothing recorded yet: accepted.
    await ReviewCase.create(
        case_number="C-9", device_id="pad-v3", ended_at=ended, rate_by=ended + timedelta(days=7)
    )
    await stand.send("pad-v3", rating(3, "C-9", Rating.SATISFIED, at=in_time))
    reasons = dict(await ReviewRefusal.all().values_list("case_number", "reason"))
    assert reasons == {"C-7": "late", "C-8": "late"}
    assert not await ReviewRow.filter(case_number="C-7").exists()
    assert (await ReviewRow.get(case_number="C-8")).source == "default"
    assert (await ReviewRow.get(case_number="C-9")).rating == "satisfied"
    assert await WorkOrderRow.all().count() == 0
    assert stand.metric("termfleet_review_refusals_total", reason="late") == 2


async def test_a_pad_at_no_site_is_stored_with_no_site_and_level_none(stand: Stand) -> None:
    await stand.send("pad-unplaced", rating(1, "C-10", Rating.DISSATISFIED))
    review = await ReviewRow.get(case_number="C-10")
    order = await WorkOrderRow.get(case_number="C-10")
    assert (review.site_id, order.site_id, order.deadline_working_days) == (None, None, 5)
    assert stand.metric("termfleet_reviews_total", rating="dissatisfied", level="none") == 1
