"""Device rows and their inventory rows, many devices to a statement.

The ingest writes the states of thousands of terminals at once (``state_writes``): after a
broker restart every one of them says online and sends a full heartbeat within a minute. A
statement a device (each a round trip and 5-10 ms of the event loop) takes minutes for a
province's fleet, so each write here is one statement for the whole batch: PostgreSQL gets the
columns as arrays (``unnest``), SQLite the rows through ``executemany``.

Text from the wire is cut to its column's size here: PostgreSQL refuses a longer value, and
one refused row would fail the whole batch every round.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from tortoise.backends.base.client import BaseDBAsyncClient

from .device_inventory import AGENT_VERSION_MAX, AgentFacts, Peripheral
from .fleet import DeviceState

# A state that does not know its kind (a heartbeat before any presence: 'unknown') keeps the
# stored one, such as an imported kind.
_UPDATE_POSTGRES = (
    "UPDATE device SET kind = COALESCE(NULLIF(v.kind, 'unknown'), device.kind),"
    " presence = v.presence, presence_session = v.session, agent_version = v.agent_version,"
    " last_seen = v.last_seen, last_health = v.health::jsonb"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],"
    " $6::timestamptz[], $7::text[])"
    " AS v(device_id, kind, presence, session, agent_version, last_seen, health)"
    " WHERE device.device_id = v.device_id"
)
_UPDATE_SQLITE = (
    "UPDATE device SET kind = COALESCE(NULLIF(?2, 'unknown'), kind), presence = ?3,"
    " presence_session = ?4, agent_version = ?5, last_seen = ?6, last_health = ?7"
    " WHERE device_id = ?1"
)
_UPSERT_POSTGRES = (
    "INSERT INTO device (device_id, kind, presence, presence_session, agent_version, last_seen,"
    " last_health, first_seen)"
    " SELECT v.device_id, v.kind, v.presence, v.session, v.agent_version, v.last_seen,"
    " v.health::jsonb, v.first_seen"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],"
    " $6::timestamptz[], $7::text[], $8::timestamptz[])"
    " AS v(device_id, kind, presence, session, agent_version, last_seen, health, first_seen)"
    " ON CONFLICT (device_id) DO UPDATE SET"
    " kind = COALESCE(NULLIF(excluded.kind, 'unknown'), device.kind),"
    " presence = excluded.presence, presence_session = excluded.presence_session,"
    " agent_version = excluded.agent_version, last_seen = excluded.last_seen,"
    " last_health = excluded.last_health"
)
_UPSERT_SQLITE = (
    "INSERT INTO device (device_id, kind, presence, presence_session, agent_version, last_seen,"
    " last_health, first_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    " ON CONFLICT (device_id) DO UPDATE SET"
    " kind = COALESCE(NULLIF(excluded.kind, 'unknown'), device.kind),"
    " presence = excluded.presence, presence_session = excluded.presence_session,"
    " agent_version = excluded.agent_version, last_seen = excluded.last_seen,"
    " last_health = excluded.last_health"
)
_UPSERT_AGENT_POSTGRES = (
    "INSERT INTO device_agent (device_id, agent_version, os, hardware_model, changed_at)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])"
    " ON CONFLICT (device_id) DO UPDATE SET agent_version = excluded.agent_version,"
    " os = excluded.os, hardware_model = excluded.hardware_model,"
    " changed_at = excluded.changed_at"
)
_UPSERT_AGENT_SQLITE = (
    "INSERT INTO device_agent (device_id, agent_version, os, hardware_model, changed_at)"
    " VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (device_id) DO UPDATE SET agent_version = excluded.agent_version,"
    " os = excluded.os, hardware_model = excluded.hardware_model,"
    " changed_at = excluded.changed_at"
)
# A peripheral's status clock (status_since) starts again only when its status differs from
# the stored one.
_UPSERT_PERIPHERAL_POSTGRES = (
    "INSERT INTO device_peripheral (device_id, name, kind, status, reason, model, firmware,"
    " status_since, changed_at)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
    " $6::text[], $7::text[], $8::timestamptz[], $9::timestamptz[])"
    " ON CONFLICT (device_id, name) DO UPDATE SET kind = excluded.kind,"
    " status = excluded.status, reason = excluded.reason, model = excluded.model,"
    " firmware = excluded.firmware, changed_at = excluded.changed_at,"
    " status_since = CASE WHEN device_peripheral.status = excluded.status"
    " THEN device_peripheral.status_since ELSE excluded.status_since END"
)
_UPSERT_PERIPHERAL_SQLITE = (
    "INSERT INTO device_peripheral (device_id, name, kind, status, reason, model, firmware,"
    " status_since, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (device_id, name) DO UPDATE SET kind = excluded.kind,"
    " status = excluded.status, reason = excluded.reason, model = excluded.model,"
    " firmware = excluded.firmware, changed_at = excluded.changed_at,"
    " status_since = CASE WHEN device_peripheral.status = excluded.status"
    " THEN device_peripheral.status_since ELSE excluded.status_since END"
)
_DELETE_PERIPHERAL_POSTGRES = (
    "DELETE FROM device_peripheral AS p"
    " USING unnest($1::text[], $2::text[]) AS g(device_id, name)"
    " WHERE p.device_id = g.device_id AND p.name = g.name"
)
_DELETE_PERIPHERAL_SQLITE = "DELETE FROM device_peripheral WHERE device_id = ? AND name = ?"


async def update_states(conn: BaseDBAsyncClient, states: Sequence[DeviceState]) -> None:
    """The rows of devices the database holds (a device it does not hold is left out)."""
    await _execute(conn, [_row(s) for s in states], _UPDATE_POSTGRES, _UPDATE_SQLITE)


async def upsert_states(
    conn: BaseDBAsyncClient, states: Sequence[DeviceState], first_seen: datetime
) -> None:
    """The rows of the devices, made (first seen at ``first_seen``) where there is none."""
    rows = [(*_row(s), first_seen) for s in states]
    await _execute(conn, rows, _UPSERT_POSTGRES, _UPSERT_SQLITE)


async def upsert_agents(
    conn: BaseDBAsyncClient, agents: Sequence[tuple[str, AgentFacts, datetime]]
) -> None:
    """Each (device id, what runs it, when that was heard)."""
    rows = [(d, a.agent_version, a.os, a.hardware_model, at) for d, a, at in agents]
    await _execute(conn, rows, _UPSERT_AGENT_POSTGRES, _UPSERT_AGENT_SQLITE)


async def upsert_peripherals(
    conn: BaseDBAsyncClient, peripherals: Sequence[tuple[str, Peripheral, datetime]]
) -> None:
    """Each (device id, peripheral, when heard); a changed status starts its clock again."""
    rows = [
        (d, p.name, p.kind, p.status, p.reason, p.model, p.firmware, at, at)
        for d, p, at in peripherals
    ]
    await _execute(conn, rows, _UPSERT_PERIPHERAL_POSTGRES, _UPSERT_PERIPHERAL_SQLITE)


async def delete_peripherals(conn: BaseDBAsyncClient, gone: Sequence[tuple[str, str]]) -> None:
    """Each (device id, peripheral name) no longer reported."""
    await _execute(conn, gone, _DELETE_PERIPHERAL_POSTGRES, _DELETE_PERIPHERAL_SQLITE)


def _row(state: DeviceState) -> tuple[object, ...]:
    return (
        state.device_id,
        state.kind.value,
        state.presence.value,
        state.session,
        state.agent_version[:AGENT_VERSION_MAX],
        state.last_seen,
        None if state.health is None else msgspec.json.encode(state.health).decode(),
    )


async def _execute(
    conn: BaseDBAsyncClient, rows: Sequence[Sequence[Any]], postgres: str, sqlite: str
) -> None:
    """``postgres`` with each column as an array, or ``sqlite`` with each row."""
    if not rows:
        return
    if conn.capabilities.dialect == "postgres":
        columns = [list(column) for column in zip(*rows, strict=True)]
        await conn.execute_query(postgres, columns)
        return
    values = [[_sqlite_value(v) for v in row] for row in rows]
    async with conn.acquire_connection() as connection:
        await connection.executemany(sqlite, values)


def _sqlite_value(value: object) -> object:
    # A datetime as tortoise's SQLite adapter stores it.
    return value.isoformat(" ") if isinstance(value, datetime) else value
