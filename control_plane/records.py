"""Storing records in batches: one transaction, idempotent on (device_id, seq).

This is the ingest's hot path, so it speaks SQL to the driver through tortoise's connection
(``execute_many``) instead of building model instances; the tables are still tortoise models.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edge.protocol import DeviceEvent, Record, Review, UnknownUsage

T = TypeVar("T")

_INSERT_RECORD_SQLITE = (
    "INSERT INTO record (device_id, seq, channel, type, device_time, received_at, payload) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, seq) DO NOTHING"
)
_INSERT_RECORDS_POSTGRES = (
    "INSERT INTO record (device_id, seq, channel, type, device_time, received_at, payload) "
    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], "
    "$5::timestamptz[], $6::timestamptz[], $7::text[]) "
    "ON CONFLICT (device_id, seq) DO NOTHING"
)
"""One statement per batch, its columns as arrays: several times faster than a statement per
row (``executemany``), which costs PostgreSQL a round of parse, bind and execute each."""
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
    if isinstance(payload, UnknownUsage):
        return payload.original_type
    if isinstance(payload, DeviceEvent):
        return payload.type.value
    return _fixed_record_type(type(payload))


@functools.cache
def _fixed_record_type(cls: type[Record]) -> str:
    """A known usage type's tag, or "review": the same for every record of the class."""
    return "review" if issubclass(cls, Review) else str(cls.__struct_config__.tag)


@dataclass(frozen=True, slots=True)
class RecordRow:
    device_id: str
    seq: int
    channel: str
    type: str
    device_time: datetime | None
    received_at: datetime
    payload: str


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
) -> T | None:
    """Commit a batch in one transaction. A record already stored is skipped, not an error.

    ``then`` runs in the same transaction after the records are written (the reviews' tables),
    and its result is returned.
    """
    async with in_transaction() as conn:
        dialect = conn.capabilities.dialect
        if records and dialect == "postgres":
            columns = [
                [getattr(r, name) for r in records]
                for name in ("device_id", "seq", "channel", "type", "device_time")
            ]
            columns += [[r.received_at for r in records], [r.payload for r in records]]
            await conn.execute_query(_INSERT_RECORDS_POSTGRES, columns)
        elif records:
            when = _sqlite_times(records)
            await conn.execute_many(
                _INSERT_RECORD_SQLITE,
                [
                    [
                        r.device_id,
                        r.seq,
                        r.channel,
                        r.type,
                        r.device_time,
                        when(r.received_at),
                        r.payload,
                    ]
                    for r in records
                ],
            )
        if rejected:
            await conn.execute_many(
                _INSERT_REJECTED[dialect],
                [
                    [r.topic, r.device_id, r.seq, r.reason, r.detail, r.payload, r.received_at]
                    for r in rejected
                ],
            )
        return None if then is None else await then(conn)
