"""Device rows in the database: load the live state at start, write it when it changes, list it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from edge.protocol import DeviceKind, Heartbeat, PresenceState

from .db.models import Device
from .fleet import DeviceState

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    kind: str | None = None
    presence: str | None = None


async def load_states() -> list[DeviceState]:
    return [
        DeviceState(
            device_id=row.device_id,
            kind=DeviceKind(row.kind),
            presence=PresenceState(row.presence),
            session=row.presence_session,
            agent_version=row.agent_version,
            last_seen=row.last_seen,
            health=msgspec.convert(row.last_health, Heartbeat) if row.last_health else None,
        )
        for row in await Device.all()
    ]


async def save_state(state: DeviceState) -> None:
    """Write one device's state (insert or update)."""
    await Device.update_or_create(
        device_id=state.device_id,
        defaults={
            "kind": state.kind.value,
            "presence": state.presence.value,
            "presence_session": state.session,
            "agent_version": state.agent_version,
            "last_seen": state.last_seen,
            "last_health": msgspec.to_builtins(state.health) if state.health else None,
        },
    )


async def list_devices(
    flt: DeviceFilter, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of devices ordered by id, and the cursor of the next page (None at the end)."""
    query = Device.all().order_by("device_id")
    if flt.kind:
        query = query.filter(kind=flt.kind)
    if flt.presence:
        query = query.filter(presence=flt.presence)
    if after:
        query = query.filter(device_id__gt=after)
    rows = await query.limit(limit + 1)
    page = rows[:limit]
    next_cursor = page[-1].device_id if len(rows) > limit else None
    return [_as_dict(row) for row in page], next_cursor


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _as_dict(row: Device) -> dict[str, Any]:
    return {
        "device_id": row.device_id,
        "kind": row.kind,
        "presence": row.presence,
        "session": row.presence_session,
        "agent_version": row.agent_version,
        "first_seen": _iso(row.first_seen),
        "last_seen": _iso(row.last_seen),
        "health": row.last_health,
    }
