"""Where the roll-up job stands, and what it asks of the ``record`` table, which it only reads.

The ``record`` table has one index the job can use, its primary key; the ingest writes it, and
another index would cost every record it stores. So the job walks records by id, and finds
an id by receive time with a binary search over the ids (``first_id_received_since``).
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from .db.models import StoredRecord
from .db.rollup_models import RollupState

STATE = "records"
"""The name of the state row of the roll-up of the ``record`` table."""
LOCK_TIMEOUT = "2s"
_CREATE_STATE = (
    "INSERT INTO rollup_state (name, last_record_id, replay_next_id, replay_until_id,"
    " replay_round) VALUES ({slot}, 0, 0, 0, 0) ON CONFLICT (name) DO NOTHING"
)
"""How long the high-water mark waits for the ingest's open transactions (PostgreSQL)."""


class WritersBusyError(RuntimeError):
    """Records being written kept the job from finding its high-water mark; try again later."""


def client() -> BaseDBAsyncClient:
    """The database's one connection (the job's statements that are SQL go through it)."""
    client: BaseDBAsyncClient = connections.get(next(iter(connections.db_config)))
    return client


async def state(using: BaseDBAsyncClient | None = None, *, for_update: bool = False) -> RollupState:
    """The state row, created on first use (the job's first run counts from record 0).

    ``for_update`` locks it until the caller's transaction ends (PostgreSQL; SQLite has one
    writer at a time anyway), so that starting a re-roll and pruning exclude each other.
    """
    conn = using or client()
    slot = "$1" if conn.capabilities.dialect == "postgres" else "?"
    await conn.execute_query(_CREATE_STATE.replace("{slot}", slot), [STATE])
    query = RollupState.filter(name=STATE).using_db(conn)
    if for_update:
        query = query.select_for_update()
    return await query.get()


async def committed_high_water() -> int:
    """The highest record id below which every record is committed and visible.

    On PostgreSQL ids come from a sequence and commit out of order: id 101 may be visible
    while 100's transaction is still open, and a job that moved past 100 would never count it.
    A SHARE lock on the table waits for the transactions writing it (the ingest's batches take
    milliseconds) and holds new ones back for as long as reading the maximum takes; it gives
    up after ``LOCK_TIMEOUT``, and the job tries again next time. SQLite has one writer at a
    time, which commits its ids in order.
    """
    async with in_transaction() as conn:
        if conn.capabilities.dialect == "postgres":
            await conn.execute_query(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            try:
                await conn.execute_query("LOCK TABLE record IN SHARE MODE")
            except asyncpg.exceptions.LockNotAvailableError as exc:
                msg = f"a transaction writing records stayed open for more than {LOCK_TIMEOUT}"
                raise WritersBusyError(msg) from exc
        rows = await conn.execute_query_dict("SELECT MAX(id) AS high FROM record")
    high: int = rows[0]["high"] or 0
    return high


async def first_id_received_since(moment: datetime) -> int:
    """The smallest id of a record received at or after ``moment`` (one past the last if none).

    A binary search over the ids, each step one read by primary key: the ingest stores records
    in order of receipt, near enough (replicas' clocks differ by seconds; callers allow more).
    """
    lowest = await StoredRecord.all().order_by("id").only("id").first()
    highest = await StoredRecord.all().order_by("-id").only("id").first()
    if lowest is None or highest is None:
        return 1
    low, high = int(lowest.id), int(highest.id) + 1
    while low < high:
        middle = (low + high) // 2
        found = (
            await StoredRecord.filter(id__gte=middle)
            .order_by("id")
            .only("id", "received_at")
            .first()
        )
        if found is None or found.received_at >= moment:
            high = middle
        else:
            low = found.id + 1
    return low
