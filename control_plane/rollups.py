"""The roll-up job: records counted into the roll-ups exactly once, and re-rolled.

``roll_up`` counts every committed record it has not counted yet, a batch at a time: each
batch's counts are added to their rows (``rollup_sql``) and the state's ``last_record_id``
moves past the batch in the same transaction, only if no other process moved it first (a
compare-and-set), so a crash, a second run or a second replica never counts a record twice.
A record that arrives late is added to the hour it happened in (``rollup_counts``).

``start_reroll`` replaces the roll-ups from a month on: in one transaction it deletes their
rows and marks the records of those hours to be counted again; ``roll_up`` then counts them, a
batch at a time, as it counts new ones. What is counted is ``rollup_counts``' pure logic; this
module reads and writes.

The server runs ``keep_rolled_up`` (roll-up, then retention) every ``ROLLUP_INTERVAL_S``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from tortoise.transactions import in_transaction

from . import retention, rollup_state
from .audit import record as audit_record
from .auth import Actor
from .db import DATABASE_ERRORS
from .db.models import Device
from .db.rollup_models import DailyRollup, HourlyRollup, MonthlyRollup, RollupState
from .db.whole import whole
from .rollup_counts import StoredRow, Tally, tally
from .rollup_settings import RollupSettings
from .rollup_sql import add_counts, placeholders

log = logging.getLogger(__name__)

RETRIED_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, rollup_state.WritersBusyError)

ROLLUP_INTERVAL_S = 300.0
"""How often the server rolls up: statistics lag the records by at most this, plus a run."""
BATCH_RECORDS = 5000
"""Records per transaction: short enough not to hold SQLite's one writer for long."""
SITE_LOOKUP_CHUNK = 500
RECEIPT_SKEW = timedelta(hours=1)
"""Slack for receive times out of id order (replicas' clocks) when a re-roll finds its ids."""
_SELECT_RECORDS = (
    "SELECT id, device_id, channel, device_time, received_at, payload FROM record"
    " WHERE id > {} AND id <= {} ORDER BY id LIMIT {}"
)


class RerollError(ValueError):
    """A re-roll that cannot be done; the message says why."""


@dataclass
class RollupReport:
    """What one ``roll_up`` did."""

    read: int = 0
    counted: int = 0
    unreadable: int = 0
    recounted: int = 0
    """Records of a re-roll counted again."""
    last_record_id: int = 0
    reroll_pending: bool = False
    lost_race: bool = False
    """Another process rolled up the same records first; this one stopped."""


@dataclass(frozen=True)
class Reroll:
    """A re-roll started: the hours from ``since`` on, from the records up to ``until_id``."""

    since: datetime
    until_id: int
    hours_deleted: int
    days_deleted: int
    months_deleted: int


class _LostRaceError(Exception):
    """The state moved under a batch: another process counted it. Rolls the batch back."""


async def roll_up(
    settings: RollupSettings, *, now: datetime | None = None, batch: int = BATCH_RECORDS
) -> RollupReport:
    """Count the committed records not counted yet, then those of a pending re-roll."""
    now = now or datetime.now(UTC)
    report = RollupReport()
    high = await rollup_state.committed_high_water()
    current = await rollup_state.state()
    try:
        after = current.last_record_id
        while after < high:
            rows = await _records(after, high, batch)
            if not rows:
                break
            counted = tally(rows, await _sites_of(rows), settings.zone)
            await _commit_batch(after, rows[-1].id, counted, now)
            report.read += len(rows)
            report.counted += counted.counted
            report.unreadable += counted.unreadable
            after = rows[-1].id
        report.last_record_id = after
        report.recounted = await _continue_reroll(settings, now, batch)
        # Also when there was nothing to count: the figures are as of now.
        await RollupState.filter(name=rollup_state.STATE).update(rolled_up_at=now)
    except _LostRaceError:
        report.lost_race = True
    report.reroll_pending = (await rollup_state.state()).replay_from is not None
    if report.unreadable:
        log.warning("roll-up: %d stored records could not be decoded", report.unreadable)
    return report


async def _records(after: int, until: int, limit: int) -> list[StoredRow]:
    """The records with ids in ``(after, until]``, the first ``limit`` of them by id.

    SQL rather than the model: tortoise parses each time with a pure-Python ISO 8601 parser,
    which took most of a roll-up's time; ``datetime.fromisoformat`` reads SQLite's text.
    """
    conn = rollup_state.client()
    slots = placeholders(conn.capabilities.dialect, 3)
    rows = await conn.execute_query_dict(_SELECT_RECORDS.format(*slots), [after, until, limit])
    return [
        StoredRow(
            row["id"],
            row["device_id"],
            row["channel"],
            _moment(row["device_time"]),
            _moment(row["received_at"]) or datetime.min.replace(tzinfo=UTC),
            row["payload"],
        )
        for row in rows
    ]


def _moment(value: datetime | str | None) -> datetime | None:
    """A time column's value: a datetime from PostgreSQL, ISO 8601 text from SQLite."""
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


async def _sites_of(rows: Sequence[StoredRow]) -> dict[str, int | None]:
    """Where the records' devices are placed now: a record counts for its device's site."""
    devices = sorted({row.device_id for row in rows})
    sites: dict[str, int | None] = {}
    for start in range(0, len(devices), SITE_LOOKUP_CHUNK):
        chunk = devices[start : start + SITE_LOOKUP_CHUNK]
        found = await Device.filter(device_id__in=chunk).values_list("device_id", "site_id")
        sites.update((str(device), site) for device, site in found)
    return sites


async def _commit_batch(after: int, last: int, counted: Tally, now: datetime) -> None:
    async with in_transaction() as conn:
        moved = (
            await RollupState.filter(name=rollup_state.STATE, last_record_id=after)
            .using_db(conn)
            .update(last_record_id=last, rolled_up_at=now)
        )
        if moved != 1:
            raise _LostRaceError
        await add_counts(conn, counted)


async def _continue_reroll(settings: RollupSettings, now: datetime, batch: int) -> int:
    """Count the records of a pending re-roll again, batch by batch; the records recounted."""
    recounted = 0
    while True:
        current = await rollup_state.state()
        since = current.replay_from
        if since is None:
            return recounted
        after, until = current.replay_next_id, current.replay_until_id
        rows = await _records(after, until, batch)
        last = rows[-1].id if rows else until
        counted = tally(rows, await _sites_of(rows), settings.zone, since=since)
        done = last >= until
        async with in_transaction() as conn:
            moved = (
                await RollupState.filter(
                    name=rollup_state.STATE, replay_round=current.replay_round, replay_next_id=after
                )
                .using_db(conn)
                .update(
                    replay_next_id=0 if done else last,
                    replay_until_id=0 if done else until,
                    replay_from=None if done else since,
                    rolled_up_at=now,
                )
            )
            if moved != 1:
                raise _LostRaceError
            await add_counts(conn, counted)
        recounted += counted.counted


async def start_reroll(
    since: date, settings: RollupSettings, *, actor: Actor, now: datetime | None = None
) -> Reroll:
    """Replace the roll-ups from the month of the local day ``since`` on with the records' counts.

    A re-roll starts on the first of that month, because a month's row sums all its days. It
    deletes the hourly, daily and monthly rows from then on and marks their records to be
    counted again, in one transaction, audited; ``roll_up`` counts them. Refused for a month
    whose records retention may have deleted, and for a day to come.
    """
    now = now or datetime.now(UTC)
    if datetime.combine(since, time(), settings.zone) > now:
        msg = f"{since} has not begun yet ({settings.zone.key})"
        raise RerollError(msg)
    start = datetime.combine(since.replace(day=1), time(), settings.zone).astimezone(UTC)
    async with in_transaction() as conn:
        current = await rollup_state.state(conn, for_update=True)
        kept_since = current.raw_kept_since
        if kept_since is not None and start < kept_since:
            msg = (
                f"records before {kept_since:%Y-%m-%d %H:%M} UTC may have been deleted by"
                f" retention, and a re-roll starts on the first of the month: re-roll from the"
                f" first month after {kept_since.astimezone(settings.zone).date()}"
            )
            raise RerollError(msg)
        if current.replay_from is not None:
            # A re-roll still running: the new one takes over its hours, and its records with
            # them (the search below starts at the earlier hour).
            start = min(start, current.replay_from)
        first_id = await rollup_state.first_id_received_since(start - RECEIPT_SKEW)
        until = current.last_record_id
        day = start.astimezone(settings.zone).date()
        deleted = {
            "hourly_rows": await HourlyRollup.filter(hour__gte=start).using_db(conn).delete(),
            "daily_rows": await DailyRollup.filter(day__gte=day).using_db(conn).delete(),
            "monthly_rows": await MonthlyRollup.filter(month__gte=day).using_db(conn).delete(),
        }
        await (
            RollupState.filter(name=rollup_state.STATE)
            .using_db(conn)
            .update(
                replay_from=start,
                replay_next_id=max(first_id - 1, 0),
                replay_until_id=until,
                replay_round=current.replay_round + 1,
            )
        )
        await audit_record(
            "rollup.reroll",
            actor,
            "rollup",
            rollup_state.STATE,
            before=deleted,
            after={"since": start.isoformat(), "until_record_id": until},
            at=now,
            using_db=conn,
        )
    return Reroll(start, until, *deleted.values())


async def keep_rolled_up(
    settings: RollupSettings | None = None,
    *,
    interval_s: float = ROLLUP_INTERVAL_S,
    first_after_s: float = 0.0,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Roll up, then apply retention, every ``interval_s`` until cancelled.

    The first run comes ``first_after_s`` after the start. For the server: run it as a task
    beside the ingest. A database that fails is logged and tried again at the next interval.
    Several replicas may run it: the state's compare-and-set lets one count each batch.
    """
    settings = settings or RollupSettings.from_env()
    await asyncio.sleep(first_after_s)
    while True:
        try:
            report = await whole(roll_up(settings, now=clock()))
            pruned = await whole(retention.prune(settings, now=clock()))
        except RETRIED_ERRORS as exc:
            # The job must outlive every database failure, as the server outlives the job's.
            log.warning("roll-up or retention failed, trying again in %.0f s: %s", interval_s, exc)
        else:
            log.debug("roll-up: %s; retention: %s", report, pruned)
        await asyncio.sleep(interval_s)
