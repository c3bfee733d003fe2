"""Device rows in the database: load the live state at start, write it when it changes, list it."""

from __future__ import annotations

import msgspec

from edge.protocol import DeviceKind, Heartbeat, PresenceState

from .db.models import Device
from .fleet import DeviceState


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
