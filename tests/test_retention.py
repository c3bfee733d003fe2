"""Retention on SQLite and PostgreSQL: raw records go only once counted and old, in batches.

Also: roll-ups go by their own ages, the statistics stay as they were, and the server's job
does both.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, date, datetime, timedelta

from control_plane import retention, rollup_state, rollups
from control_plane.audit import local_actor
from control_plane.db import database
from control_plane.db.models import StoredRecord
from control_plane.db.rollup_models import DailyRollup, HourlyRollup, MonthlyRollup
from control_plane.rollup_settings import RollupSettings
from edge.protocol import CallForHelp, Transaction
from tests.support.stats_fixture import SHANGHAI, store

SETTINGS = RollupSettings(SHANGHAI, records_days=90, hourly_days=366, daily_days=1096)
NOW = datetime(2026, 6, 1, 4, tzinfo=UTC)
OLD = NOW - timedelta(days=91)
YOUNG = NOW - timedelta(days=89)


def helps(at: datetime, count: int) -> list[tuple[str, CallForHelp, datetime]]:
    return [("kiosk-r", CallForHelp(), at)] * count


async def seqs() -> list[int]:
    return sorted(record.seq for record in await StoredRecord.all())


async def test_old_counted_records_go_and_the_rest_stay(database_url: str) -> None:
    async with database(database_url):
        await store(helps(OLD, 3))
        await rollups.roll_up(SETTINGS, now=NOW)
        await store(helps(OLD, 2), first_seq=10)  # old too, but stored after the roll-up ran
        await store(helps(YOUNG, 2), first_seq=20)

        report = await retention.prune(SETTINGS, now=NOW)

        assert report.records == 3
        assert await seqs() == [10, 11, 20, 21]
        assert (await rollup_state.state()).raw_kept_since == NOW - timedelta(days=90)

        await rollups.roll_up(SETTINGS, now=NOW)
        await retention.prune(SETTINGS, now=NOW)

        assert await seqs() == [20, 21]


async def test_records_go_in_bounded_batches_and_stop_at_the_first_that_stays(
    database_url: str,
) -> None:
    async with database(database_url):
        # In id order: 7 old, 1 young, 2 old (a replica whose clock ran late, say).
        await store([*helps(OLD, 7), *helps(YOUNG, 1), *helps(OLD, 2)])
        await rollups.roll_up(SETTINGS, now=NOW)

        report = await retention.prune(SETTINGS, now=NOW, batch=3)

        assert report.records == 7
        assert await seqs() == [8, 9, 10]


async def test_the_statistics_stay_when_their_records_go(database_url: str) -> None:
    async with database(database_url):
        await store([("kiosk-r", Transaction(item_code="I"), OLD)] * 4)
        await rollups.roll_up(SETTINGS, now=NOW)
        before = await DailyRollup.all().values_list("day", "transactions_completed")

        await retention.prune(SETTINGS, now=NOW)

        assert await StoredRecord.all().count() == 0
        assert await DailyRollup.all().values_list("day", "transactions_completed") == before
        assert [tuple(row) for row in before] == [(OLD.astimezone(SHANGHAI).date(), 4)]


async def test_a_pending_reroll_keeps_the_records_it_has_still_to_count(
    database_url: str,
) -> None:
    settings = RollupSettings(SHANGHAI, records_days=1)
    async with database(database_url):
        monday = datetime(2026, 5, 25, 2, tzinfo=UTC)
        await store(helps(monday, 4))
        await rollups.roll_up(settings, now=NOW)
        await rollups.start_reroll(date(2026, 5, 25), settings, actor=local_actor(), now=NOW)

        pruned = await retention.prune(settings, now=NOW)
        kept = await StoredRecord.all().count()
        await rollups.roll_up(settings, now=NOW)
        rows = [row.help_calls for row in await HourlyRollup.all()]
        after = await retention.prune(settings, now=NOW)

        assert (pruned.records, kept) == (0, 4)
        assert rows == [4]
        assert after.records == 4


async def test_roll_ups_go_by_their_own_ages(database_url: str) -> None:
    settings = RollupSettings(SHANGHAI, records_days=1, hourly_days=10, daily_days=20)
    async with database(database_url):
        ages = [5, 9, 11, 19, 21]
        for n, age in enumerate(ages):
            at = NOW - timedelta(days=age)
            await store(helps(at, 1), first_seq=n + 1)
        await rollups.roll_up(settings, now=NOW)

        report = await retention.prune(settings, now=NOW)

        hours = await HourlyRollup.all().order_by("hour").values_list("hour", flat=True)
        days = await DailyRollup.all().order_by("day").values_list("day", flat=True)
        assert (report.hourly, report.daily) == (3, 1)
        assert hours == [NOW - timedelta(days=9), NOW - timedelta(days=5)]
        today = NOW.astimezone(SHANGHAI).date()
        assert days == [today - timedelta(days=age) for age in (19, 11, 9, 5)]


async def test_a_month_goes_with_the_last_of_its_days(database_url: str) -> None:
    settings = RollupSettings(SHANGHAI, records_days=1, hourly_days=10, daily_days=20)
    async with database(database_url):
        await store([*helps(NOW - timedelta(days=40), 1), *helps(NOW - timedelta(days=25), 1)])
        await rollups.roll_up(settings, now=NOW)

        report = await retention.prune(settings, now=NOW)

        # Days before 12 May go: 22 April's and 7 May's; April goes, May stays whole.
        assert (report.daily, report.monthly) == (2, 1)
        assert [row.month for row in await MonthlyRollup.all()] == [date(2026, 5, 1)]


async def test_the_servers_job_rolls_up_and_prunes_until_cancelled(database_url: str) -> None:
    async with database(database_url):
        await store([*helps(OLD, 2), *helps(YOUNG, 3)])

        job = asyncio.create_task(
            rollups.keep_rolled_up(SETTINGS, interval_s=3600, clock=lambda: NOW), name="rollups"
        )
        try:
            for _ in range(500):
                state = await rollup_state.state()
                if state.raw_kept_since is not None and await StoredRecord.all().count() == 3:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the job did not roll up and prune")
        finally:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        assert state.last_record_id == 5
        assert sorted(row.help_calls for row in await HourlyRollup.all()) == [2, 3]
        assert job.cancelled()
