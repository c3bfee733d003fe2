"""The default 基本满意 review of a case not rated in time (``review_defaults``), on both databases.

Exactly one default per case whose rating period is over, with the case's details; none for a
case rated in time or rated while the job runs; a default never replaced; two jobs at once; the
jurisdiction's shorter period; passes that search on from the last; a failing database.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from control_plane import review_defaults
from control_plane.auth import Principal, Role
from control_plane.db import database
from control_plane.db.review_models import ReviewCase, ReviewRow
from control_plane.review_cases import CaseRequest, record_case
from control_plane.review_defaults import ReviewDefaults, record_defaults
from tests.support.case_world import TOWN_A, World, load_world, set_policy

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
WEEK = timedelta(days=7)
ADMIN = Principal(token_id=1, name="business-system", role=Role.ADMIN)


@contextlib.asynccontextmanager
async def world(database_url: str) -> AsyncIterator[World]:
    async with database(database_url):
        yield await load_world()


async def case(number: str, pad: str = "pad-d1", ended_at: datetime = NOW) -> ReviewCase:
    request = CaseRequest(
        case_number=number,
        item_code="11440100MB2C91234X4440117001",
        device_id=pad,
        item_name="居民身份证换领",
        staff_id="A017",
        department="gongan",
        ended_at=ended_at,
    )
    return (await record_case(ADMIN, request, ended_at)).case


async def rate(number: str, at: datetime, seq: int = 1) -> ReviewRow:
    """The pad's own rating of a case, as the ingest stores it."""
    return await ReviewRow.create(
        case_number=number,
        source="terminal",
        device_id="pad-d1",
        seq=seq,
        rating="very_satisfied",
        channel="window_pad",
        rated_at=at,
        received_at=at,
    )


async def test_a_case_past_its_rating_period_gets_one_basic_default(database_url: str) -> None:
    later = NOW + WEEK + timedelta(hours=2)
    async with world(database_url):
        stored = await case("c1")
        examined = await record_defaults(later)
        again = await record_defaults(later + timedelta(minutes=1))
        [review] = await ReviewRow.filter(case_number="c1")
        after = await ReviewCase.get(case_number="c1")
    assert (examined, again) == (1, 0)
    assert (review.source, review.rating, review.channel) == ("default", "basic", "window_pad")
    assert (review.rated_at, review.received_at) == (NOW + WEEK, later)
    assert (review.site_id, review.window_id, review.window_number) == (
        stored.site_id,
        stored.window_id,
        "W01",
    )
    assert (review.item_code, review.department, review.staff_id) == (
        "11440100MB2C91234X4440117001",
        "gongan",
        "A017",
    )
    assert (review.device_id, review.seq, review.chain_checked) == ("", None, True)
    assert (review.indicators, review.comment, review.citizen_ref, review.voided_at) == (
        {},
        "",
        "",
        None,
    )
    assert after.defaulted_at == later


async def test_a_case_is_defaulted_from_the_end_of_its_period_not_before(
    database_url: str,
) -> None:
    async with world(database_url):
        await case("c1")
        before = await record_defaults(NOW + WEEK - timedelta(seconds=1))
        none_yet = await ReviewRow.all().count()
        at_the_end = await record_defaults(NOW + WEEK)
        defaults = await ReviewRow.all().count()
    assert (before, none_yet) == (0, 0)
    assert (at_the_end, defaults) == (1, 1)


async def test_a_case_rated_in_time_gets_no_default(database_url: str) -> None:
    async with world(database_url):
        await case("c1")
        await case("c2")
        await rate("c1", NOW + timedelta(minutes=1))
        examined = await record_defaults(NOW + 2 * WEEK)
        reviews = {r.case_number: (r.source, r.rating) for r in await ReviewRow.all()}
        rated = await ReviewCase.get(case_number="c1")
    assert examined == 1
    assert reviews == {"c1": ("terminal", "very_satisfied"), "c2": ("default", "basic")}
    assert rated.defaulted_at is None


async def test_a_default_is_never_replaced_by_a_later_rating(database_url: str) -> None:
    async with world(database_url):
        await case("c1")
        await record_defaults(NOW + WEEK)
        with pytest.raises(IntegrityError):  # one review per case: the ingest refuses it as late
            await rate("c1", NOW + WEEK + timedelta(hours=1))
        await record_defaults(NOW + 2 * WEEK)
        reviews = [(r.source, r.rating) for r in await ReviewRow.filter(case_number="c1")]
        defaulted = await ReviewCase.get(case_number="c1")
    assert reviews == [("default", "basic")]
    assert defaulted.defaulted_at == NOW + WEEK


async def test_a_case_rated_while_the_job_runs_keeps_its_rating(database_url: str) -> None:
    later = NOW + WEEK + timedelta(minutes=5)
    async with world(database_url):
        await case("c1")
        await case("c2")
        async with in_transaction() as conn:
            due = await review_defaults.due_cases(conn, later, review_defaults.EPOCH, 500)
            # The ingest stores c1's rating between the job's search and its insert.
            await ReviewRow.create(
                case_number="c1",
                source="terminal",
                device_id="pad-d1",
                seq=7,
                rating="dissatisfied",
                channel="window_pad",
                rated_at=NOW + WEEK - timedelta(minutes=1),
                received_at=later,
                using_db=conn,
            )
            await review_defaults.default_cases(conn, due, later)
        reviews = {r.case_number: (r.source, r.rating) for r in await ReviewRow.all()}
        cases = {c.case_number: c.defaulted_at for c in await ReviewCase.all()}
    assert due == ["c1", "c2"]
    assert reviews == {"c1": ("terminal", "dissatisfied"), "c2": ("default", "basic")}
    assert cases == {"c1": None, "c2": later}


async def test_two_jobs_at_once_make_one_default_per_case(database_url: str) -> None:
    numbers = [f"c{n:02}" for n in range(30)]
    async with world(database_url):
        for number in numbers:
            await case(number)
        examined = await asyncio.gather(
            record_defaults(NOW + WEEK, batch=7),
            record_defaults(NOW + WEEK, batch=7),
            ReviewDefaults(lambda: NOW + WEEK, batch=4).run_once(),
        )
        reviews = await ReviewRow.all().values_list("case_number", "source")
        undefaulted = await ReviewCase.filter(defaulted_at=None).count()
    assert sorted(reviews) == [(number, "default") for number in numbers]
    assert undefaulted == 0
    assert sum(examined) >= len(numbers)


async def test_cases_are_defaulted_a_batch_at_a_time_until_none_is_left(
    database_url: str,
) -> None:
    async with world(database_url):
        for n in range(5):
            await case(f"c{n}", ended_at=NOW + timedelta(minutes=n))
        examined = await record_defaults(NOW + 2 * WEEK, batch=2)
        defaults = await ReviewRow.filter(source="default").count()
    assert (examined, defaults) == (5, 5)


async def test_a_shorter_rating_period_defaults_sooner(database_url: str) -> None:
    async with world(database_url):
        await set_policy(TOWN_A, 3)
        await case("a1", pad="pad-a1")
        await case("b1", pad="pad-b1")
        await record_defaults(NOW + timedelta(days=4))
        after_four_days = {review.case_number for review in await ReviewRow.all()}
        await record_defaults(NOW + WEEK)
        after_a_week = {review.case_number for review in await ReviewRow.all()}
    assert after_four_days == {"a1"}
    assert after_a_week == {"a1", "b1"}


async def test_each_pass_defaults_what_came_due_since_the_last(database_url: str) -> None:
    clock = [NOW + timedelta(days=1)]
    job = ReviewDefaults(lambda: clock[0])
    async with world(database_url):
        await case("c1")
        await case("c2", ended_at=NOW + timedelta(hours=1))
        first = await job.run_once()
        clock[0] = NOW + WEEK + timedelta(minutes=30)
        second = await job.run_once()
        clock[0] = NOW + WEEK + timedelta(hours=2)
        third = await job.run_once()
        defaulted = {c.case_number: c.defaulted_at for c in await ReviewCase.all()}
    assert (first, second, third) == (0, 1, 1)
    assert defaulted == {
        "c1": NOW + WEEK + timedelta(minutes=30),
        "c2": NOW + WEEK + timedelta(hours=2),
    }


async def test_the_job_outlives_a_failing_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = review_defaults.record_defaults
    calls = 0

    async def failing_once(now: datetime, **kwargs: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            msg = "database is locked"
            raise sqlite3.OperationalError(msg)
        return await real(now, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(review_defaults, "record_defaults", failing_once)
    async with world(database_url):
        await case("c1")
        task = asyncio.create_task(
            review_defaults.keep_defaults(lambda: NOW + WEEK, interval_s=0.01)
        )
        try:
            async with asyncio.timeout(10):
                while not await ReviewRow.filter(case_number="c1").exists():  # noqa: ASYNC110
                    # polled: the database tells nobody when a row appears
                    await asyncio.sleep(0.01)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert calls >= 2
    assert task.cancelled()
