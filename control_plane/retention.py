"""Retention: raw records deleted once rolled up and old enough, roll-ups once older still.

Records go first by age (``RollupSettings.records_days``, by receive time) and only when
counted: never past the roll-up's ``last_record_id``, nor into the records a pending re-roll
has still to count. They go in batches of ``PRUNE_BATCH``, oldest ids first, each batch one
statement over a range of primary keys (the only index of ``record``): the batch is the run
of oldest records that may all go, and the first one that may not ends the pruning, so the
search never reads the records retention keeps. Before deleting, the state's
``raw_kept_since`` moves to the age limit, so that no re-roll can start on hours whose
records are going.

Hourly and daily roll-ups go by their hour and day, each after its own number of days, and
monthly ones with the last of their days; one hour's, day's or month's rows per statement
(each table's unique index leads with its period).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tortoise.transactions import in_transaction

from . import rollup_state
from .db.models import StoredRecord
from .db.rollup_models import DailyRollup, HourlyRollup, MonthlyRollup, RollupState
from .rollup_settings import RollupSettings

PRUNE_BATCH = 10_000
"""Rows per delete statement: a short lock on SQLite, a short transaction on PostgreSQL."""


@dataclass
class PruneReport:
    records: int = 0
    hourly: int = 0
    daily: int = 0
    monthly: int = 0
    records_before: datetime | None = None


def deletable_prefix(
    rows: Sequence[tuple[int, datetime]], before: datetime, up_to_id: int
) -> int | None:
    """The last id of the leading run of ``rows`` (id order) that may go; None: not the first.

    A row may go when it was received before ``before`` and its id is at most ``up_to_id``.
    """
    last = None
    for row_id, received_at in rows:
        if row_id > up_to_id or received_at >= before:
            break
        last = row_id
    return last


async def prune(
    settings: RollupSettings, *, now: datetime | None = None, batch: int = PRUNE_BATCH
) -> PruneReport:
    """Apply the retention of ``settings`` at ``now``; what was deleted."""
    now = now or datetime.now(UTC)
    records_before = now - timedelta(days=settings.records_days)
    report = PruneReport(records_before=records_before)
    report.records = await _prune_records(records_before, batch)
    hourly_before = now - timedelta(days=settings.hourly_days)
    report.hourly = await _delete_by_period(HourlyRollup, "hour", hourly_before)
    daily_before = now.astimezone(settings.zone).date() - timedelta(days=settings.daily_days)
    report.daily = await _delete_by_period(DailyRollup, "day", daily_before)
    # A month goes when all its days have: the month of the limit stays whole.
    report.monthly = await _delete_by_period(MonthlyRollup, "month", daily_before.replace(day=1))
    return report


async def _prune_records(before: datetime, batch: int) -> int:
    async with in_transaction() as conn:
        current = await rollup_state.state(conn, for_update=True)
        kept_since = current.raw_kept_since
        if kept_since is None or kept_since < before:
            await (
                RollupState.filter(name=rollup_state.STATE)
                .using_db(conn)
                .update(raw_kept_since=before)
            )
    up_to_id = current.last_record_id
    if current.replay_from is not None:
        up_to_id = min(up_to_id, current.replay_next_id)
    deleted = 0
    while True:
        rows = (
            await StoredRecord.filter(id__lte=up_to_id)
            .order_by("id")
            .limit(batch)
            .values_list("id", "received_at")
        )
        last = deletable_prefix(rows, before, up_to_id)
        if last is None:
            return deleted
        deleted += await StoredRecord.filter(id__gte=rows[0][0], id__lte=last).delete()
        if last != rows[-1][0] or len(rows) < batch:
            return deleted


async def _delete_by_period(
    model: type[HourlyRollup | DailyRollup | MonthlyRollup], column: str, before: datetime | date
) -> int:
    """Delete the rows of the periods before ``before``, one period (hour, day) per statement."""
    deleted = 0
    while True:
        oldest = await model.all().order_by(column).only("id", column).first()
        if oldest is None or getattr(oldest, column) >= before:
            return deleted
        deleted += await model.filter(**{column: getattr(oldest, column)}).delete()
