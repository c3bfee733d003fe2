"""Storing records in batches: one transaction, idempotent on (device_id, seq).

This is the ingest's hot path, so it speaks SQL to the driver through tortoise's connection
instead of building model instances; the tables are still tortoise models. The insert tells
which records it stored, so that the metrics count a record delivered again not a second time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edge.protocol import DeviceEvent, Record, Review, UnknownUsage

T = TypeVar("T")

_INSERT_RECORD_SQLITE = (
    "INSERT INTO record (device_id, seq, channel, type, device_time, received_at, payload) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, seq) DO NOTHING"
)
_NEWEST_RECORDS_SQLITE = "SELECT device_id, seq FROM record ORDER BY id DESC LIMIT ?"
"""The rows a batch's insert stored when it did not store them all: SQLite gives each new row
the highest id so far, and no one else writes within the batch's transaction."""
_INSERT_RECORDS_POSTGRES = (
    "WITH stored AS ("
    "INSERT INTO record (device_id, seq, channel, type, device_time, received_at, payload) "
    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], "
    "$5::timestamptz[], $6::timestamptz[], $7::text[]) "
    "ON CONFLICT (device_id, seq) DO NOTHING RETURNING device_id, seq), "
    "counted AS (SELECT count(*) AS n FROM stored) "
    "SELECT counted.n, stored.device_id, stored.seq FROM counted "
    "LEFT JOIN stored ON counted.n < $8"
)
"""One statement per batch, its columns as arrays: several times faster than a statement per
row (``executemany``), which costs PostgreSQL a round of parse, bind and execute each. It
answers how many rows it stored and, only when that is fewer than the batch's ``$8`` records
(a redelivery), which: one row back for the usual batch, not one per record."""
_INSERT_REJECTED = {
    "sqlite": (
        "INSERT INTO rejected_message (topic, device_id, seq, reason, detail, payload, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
    ),
    "postgres": (
        "INSERT INTO rejected_message (topic, device_id, seq, reason, detail, payload, received_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)"
    ),
}


def record_type(payload: Record) -> str:
    """What kind of record this is, for the ``type`` column: the usage tag, review or event type."""
    fixed = _FIXED_TYPES.get(payload.__class__)
    if fixed is not None:  # every record of the class has the same type: one lookup per record
        return fixed
    if isinstance(payload, UnknownUsage):
        return payload.original_type
    if isinstance(payload, DeviceEvent):
        return payload.type.value
    return _fixed_record_type(type(payload))


def _fixed_record_type(cls: type[Record]) -> str:
    """A known usage type's tag, or "review": the same for every record of the class."""
    found = _FIXED_TYPES[cls] = (
        "review" if issubclass(cls, Review) else str(cls.__struct_config__.tag)
    )
    return found


_FIXED_TYPES: dict[type[Record], str] = {}
"""``_fixed_record_type`` of each class met so far (a handful)."""


@dataclass(slots=True)
class RecordRow:
    """One record to store.

    Not frozen: one is built per record, and a frozen dataclass's ``__init__`` (an
    ``object.__setattr__`` per field) costs about five times as much.
    """

    device_id: str
    seq: int
    channel: str
    type: str
    device_time: datetime | None
    received_at: datetime
    payload: str
    record: Record | None = field(default=None, compare=False)
    """The decoded record, for the usage metrics counted after the commit; not stored."""


@dataclass(frozen=True, slots=True)
class Committed(Generic[T]):
    """What a committed batch came to."""

    new: Sequence[RecordRow]
    """The records this commit stored, each once: not those stored before (a redelivery)."""
    then: T | None = None
    """What ``store_batch``'s ``then`` returned."""


@dataclass(frozen=True, slots=True)
class RejectedRow:
    topic: str
    device_id: str | None
    seq: int | None
    reason: str
    detail: str
    payload: str
    received_at: datetime


def _sqlite_times(records: Sequence[RecordRow]) -> Callable[[datetime], str]:
    """``received_at`` as SQLite stores it, formatted once per distinct value.

    A batch's records share a handful of receive times (one per message); sqlite3's adapter
    (registered by tortoise: ``isoformat(" ")``) would format the same value for every row.
    """
    formatted = {moment: moment.isoformat(" ") for moment in {r.received_at for r in records}}
    return formatted.__getitem__


async def store_batch(
    records: Sequence[RecordRow],
    rejected: Sequence[RejectedRow],
    then: Callable[[BaseDBAsyncClient], Awaitable[T]] | None = None,
) -> Committed[T]:
    """Commit a batch in one transaction. A record already stored is skipped, not an error.

    ``then`` runs in the same transaction after the records are written (the reviews' tables),
    and its result is returned with the records stored now.
    """
    async with in_transaction() as conn:
        dialect = conn.capabilities.dialect
        new: Sequence[RecordRow] = ()
        if records and dialect == "postgres":
            columns = [
                [getattr(r, name) for r in records]
                for name in ("device_id", "seq", "channel", "type", "device_time")
            ]
            columns += [[r.received_at for r in records], [r.payload for r in records]]
            _, rows = await conn.execute_query(_INSERT_RECORDS_POSTGRES, [*columns, len(records)])
            stored = rows[0][0]
            new = records if stored == len(records) else _stored_rows(records, rows, key=1)
        elif records:
            new = await _insert_sqlite(conn, records)
        if rejected:
            await conn.execute_many(
                _INSERT_REJECTED[dialect],
                [
                    [
                        r.topic,
                        r.device_id,
                        r.seq,
                        r.reason,
                        _storable(r.detail),
                        _storable(r.payload),
                        r.received_at,
                    ]
                    for r in rejected
                ],
            )
        result = None if then is None else await then(conn)
    return Committed(new, result)


def _storable(text: str) -> str:
    """A dead letter's text with each NUL as U+FFFD.

    No PostgreSQL text holds a NUL, and one would fail the batch on every redelivery. (A
    record's own text never has one: the wire contract refuses it.)
    """
    return text.replace("\x00", "\ufffd")


async def _insert_sqlite(
    conn: BaseDBAsyncClient, records: Sequence[RecordRow]
) -> Sequence[RecordRow]:
    """``executemany``, the fastest insert here; its row count says whether all were new.

    Python's sqlite3 drops the rows of a ``RETURNING`` under ``executemany``, and one statement
    of many ``VALUES`` costs a new prepare (~1.6 ms for 500 rows) for every batch size.
    """
    when = _sqlite_times(records)
    values = [
        [r.device_id, r.seq, r.channel, r.type, r.device_time, when(r.received_at), r.payload]
        for r in records
    ]
    async with conn.acquire_connection() as sqlite:
        inserted = (await sqlite.executemany(_INSERT_RECORD_SQLITE, values)).rowcount
    if inserted == len(records):
        return records  # the usual batch: nothing delivered before, nothing twice
    _, rows = await conn.execute_query(_NEWEST_RECORDS_SQLITE, [inserted])
    return _stored_rows(records, rows, key=0)


def _stored_rows(records: Sequence[RecordRow], rows: Sequence[Any], key: int) -> list[RecordRow]:
    """The records whose (device_id, seq) a row holds at ``key`` and ``key + 1``, each once.

    The rows are the driver's (asyncpg's ``Record``, sqlite3's ``Row``): tortoise types them
    as dicts but hands them over as they come, indexed by position.
    """
    keys = {(row[key], row[key + 1]) for row in rows if row[key] is not None}
    new = []
    for record in records:
        pair = (record.device_id, record.seq)
        if pair in keys:
            keys.discard(pair)
            new.append(record)
    return new
