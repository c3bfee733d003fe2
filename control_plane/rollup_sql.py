"""The roll-up tables' SQL in both dialects: adding counts to rows, and values as columns take them.

Counts are added, never overwritten (``ON CONFLICT … DO UPDATE SET n = n + excluded.n``, which
SQLite ≥ 3.24 and PostgreSQL share), so a batch of records lands on rows that earlier batches
started; the roll-up's state advances in the same transaction, which makes adding exactly-once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from .rollup_counts import COUNTERS, Counts, Tally

HOURLY, DAILY, MONTHLY = "rollup_hour", "rollup_day", "rollup_month"
_KEYS = {
    HOURLY: ("hour", "site_id", "department", "item_code"),
    DAILY: ("day", "site_id", "department", "item_code"),
    MONTHLY: ("month", "site_id", "department", "item_code"),
}


def placeholders(dialect: str, count: int, start: int = 1) -> list[str]:
    """``?`` for SQLite, ``$n`` for PostgreSQL (asyncpg), ``count`` of them."""
    if dialect == "postgres":
        return [f"${n}" for n in range(start, start + count)]
    return ["?"] * count


def column_value(dialect: str, value: datetime | date) -> datetime | date | str:
    """A time or date as its column holds it: SQLite stores text, as tortoise writes it."""
    if dialect == "postgres":
        return value
    if isinstance(value, datetime):
        return value.isoformat(" ")
    return value.isoformat()


def add_counts_sql(table: str, dialect: str) -> str:
    """One row's counts added to ``table``'s row of the same key, created when missing."""
    keys = _KEYS[table]
    columns = (*keys, *COUNTERS)
    added = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in COUNTERS)
    return (
        f"INSERT INTO {table} ({', '.join(columns)})"  # noqa: S608 - fixed names only
        f" VALUES ({', '.join(placeholders(dialect, len(columns)))})"
        f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {added}"
    )


async def add_counts(conn: BaseDBAsyncClient, counted: Tally) -> None:
    """Add a tally's counts to the hourly, daily and monthly rows, in the caller's transaction."""
    dialect = conn.capabilities.dialect
    tables: list[tuple[str, Mapping[Any, Counts]]] = [
        (HOURLY, counted.hours),
        (DAILY, counted.days),
        (MONTHLY, counted.months),
    ]
    for table, tallied in tables:
        if not tallied:
            continue
        # Sorted, so that two writers meet the same rows in the same order (no deadlock).
        rows: Sequence[list[Any]] = [
            [column_value(dialect, key[0]), *key[1:], *counts.values()]
            for key, counts in sorted(tallied.items())
        ]
        await conn.execute_many(add_counts_sql(table, dialect), list(rows))
