"""The default review: a case not rated within its rating period counts as 基本满意 (basic).

Guangdong's rule (7 natural days, configurable per jurisdiction: ``review_policy``): once a
case's ``rate_by`` has passed without a review, a ``ReviewRow`` with ``source="default"`` is
recorded for it, rated ``basic``, at ``rate_by``, with the case's site, window, department, item
and staff member; the case's ``defaulted_at`` says when. A rating that arrives later is refused
as ``late`` by the ingest (``reviews.intake``) and never replaces the default.

The job runs every minute on every replica. Each batch is one transaction; the review's unique
case number makes a second default of a case impossible (``INSERT … ON CONFLICT (case_number)
DO NOTHING``, which SQLite and PostgreSQL share), and a case rated meanwhile keeps its rating.
Inserts go in case-number order, so two replicas inserting at once wait for each other instead
of deadlocking.

Once a pass has found nothing more to default up to a moment, the next passes search only from
an hour (``SETTLED_MARGIN``) before it: a case is recorded only with a ``rate_by`` in the future
(``review_cases``), so none can appear below that line later, and the rated cases of past
months are not searched again every minute.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edge.protocol.reviews import Rating, ReviewChannel

from .db import DATABASE_ERRORS
from .db.whole import whole
from .rollup_sql import column_value, placeholders

log = logging.getLogger(__name__)

INTERVAL_S = 60.0
"""How often the job looks for cases whose rating period is over: defaults lag by this much."""
BATCH_CASES = 500
"""Cases defaulted per transaction: short enough not to hold SQLite's one writer for long."""
SETTLED_MARGIN = timedelta(hours=1)
"""How far before the last pass's moment the next searches start: more than a case recording
may take between its clock reading and its commit, and than replicas' clocks differ."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_SOURCE = "default"
DEFAULT_RATING = Rating.BASIC.value
DEFAULT_CHANNEL = ReviewChannel.WINDOW_PAD.value

_DUE = """
SELECT c.case_number FROM review_case c
WHERE c.rate_by <= {now} AND c.rate_by > {since} AND c.defaulted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM review r WHERE r.case_number = c.case_number)
ORDER BY c.rate_by, c.case_number
LIMIT {limit}
"""
_INSERT = """
INSERT INTO review (case_number, source, device_id, seq, rating, channel, indicators, comment,
  item_code, department, window_number, staff_id, citizen_ref, site_id, window_id, rated_at,
  received_at, payload, chain_checked, voided_at)
SELECT c.case_number, {source}, '', NULL, {rating}, {channel}, '{{}}', '',
  c.item_code, c.department, c.window_number, c.staff_id, '', c.site_id, c.window_id, c.rate_by,
  {now}, '', {checked}, NULL
FROM review_case c
WHERE c.case_number {cases} AND c.defaulted_at IS NULL
ORDER BY c.case_number
ON CONFLICT (case_number) DO NOTHING
"""
_MARK = """
UPDATE review_case SET defaulted_at = {now}
WHERE EXISTS (SELECT 1 FROM review r
              WHERE r.case_number = review_case.case_number AND r.source = {source})
  AND defaulted_at IS NULL AND case_number {cases}
"""
"""SQLite numbers its ``?`` in the order they appear: the parameters are passed in that order."""


async def record_defaults(
    now: datetime, *, since: datetime = EPOCH, batch: int = BATCH_CASES
) -> int:
    """Default every case whose ``rate_by`` lies in (``since``, ``now``] and has no review.

    Returns the number of cases examined, each now either defaulted or found rated.
    """
    now = now.astimezone(UTC)
    total = 0
    while True:
        async with in_transaction() as conn:
            due = await due_cases(conn, now, since.astimezone(UTC), batch)
            if due:
                await default_cases(conn, due, now)
        total += len(due)
        if len(due) < batch:
            return total


async def due_cases(
    conn: BaseDBAsyncClient, now: datetime, since: datetime, batch: int
) -> list[str]:
    """Up to ``batch`` cases whose ``rate_by`` lies in (``since``, ``now``], without a review."""
    dialect = conn.capabilities.dialect
    now_p, since_p, limit_p = placeholders(dialect, 3)
    sql = _DUE.format(now=now_p, since=since_p, limit=limit_p)
    values = [column_value(dialect, now), column_value(dialect, since), batch]
    _, rows = await conn.execute_query(sql, values)
    return [str(row["case_number"]) for row in rows]


async def default_cases(conn: BaseDBAsyncClient, due: list[str], now: datetime) -> None:
    """Record the default of each case in ``due`` that is still without a review, in ``conn``."""
    dialect = conn.capabilities.dialect
    types = ("varchar", "varchar", "varchar", "timestamptz", "boolean")
    source, rating, channel, at, checked = (
        _typed(dialect, mark, pg_type)
        for mark, pg_type in zip(placeholders(dialect, 5), types, strict=True)
    )
    cases, case_values = _among(dialect, due, start=6)
    insert = _INSERT.format(
        source=source, rating=rating, channel=channel, now=at, checked=checked, cases=cases
    )
    stamp = column_value(dialect, now)
    constants = [DEFAULT_SOURCE, DEFAULT_RATING, DEFAULT_CHANNEL, stamp, True]
    await conn.execute_query(insert, [*constants, *case_values])
    at, source = placeholders(dialect, 2)
    cases, case_values = _among(dialect, due, start=3)
    mark = _MARK.format(now=at, source=source, cases=cases)
    await conn.execute_query(mark, [stamp, DEFAULT_SOURCE, *case_values])


def _typed(dialect: str, mark: str, pg_type: str) -> str:
    """A parameter in a SELECT list, which PostgreSQL cannot type from a column by itself."""
    return f"{mark}::{pg_type}" if dialect == "postgres" else mark


def _among(dialect: str, case_numbers: list[str], start: int) -> tuple[str, list[object]]:
    """``IN (…)`` for SQLite, ``= ANY($n)`` with one array for PostgreSQL, and its values."""
    if dialect == "postgres":
        return f"= ANY(${start}::varchar[])", [case_numbers]
    marks = ", ".join(placeholders(dialect, len(case_numbers)))
    return f"IN ({marks})", list(case_numbers)


class ReviewDefaults:
    """The default job: ``run`` passes every ``interval_s``, each searching from the last."""

    def __init__(
        self,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        interval_s: float = INTERVAL_S,
        batch: int = BATCH_CASES,
    ) -> None:
        self._clock = clock
        self._interval_s = interval_s
        self._batch = batch
        self._settled: datetime | None = None
        """Every case with ``rate_by`` up to here was defaulted or rated by an earlier pass."""

    async def run_once(self) -> int:
        """One pass: default what is due; the number of cases examined."""
        now = self._clock().astimezone(UTC)
        since = self._settled - SETTLED_MARGIN if self._settled is not None else EPOCH
        examined = await record_defaults(now, since=since, batch=self._batch)
        self._settled = now
        if examined:
            log.info("rating periods over: %d case(s) defaulted or found rated", examined)
        return examined

    async def run(self) -> None:
        """Until cancelled; a database that fails is logged and tried again at the next pass."""
        while True:
            try:
                await whole(self.run_once())
            except DATABASE_ERRORS as exc:
                log.warning("could not record default reviews: %s", exc)
            await asyncio.sleep(self._interval_s)


async def keep_defaults(
    clock: Callable[[], datetime] = lambda: datetime.now(UTC), interval_s: float = INTERVAL_S
) -> None:
    """The server's chore: ``ReviewDefaults(clock, interval_s=interval_s).run()``."""
    await ReviewDefaults(clock, interval_s=interval_s).run()
