"""Live fleet state in memory: presence and last contact per device. Pure; no IO.

The ingest feeds it, the metrics collector reads it at scrape time, and the database keeps a
copy written only when something tracked changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from edge.protocol import DeviceKind, Heartbeat, Presence, PresenceState


@dataclass(frozen=True, slots=True)
class DeviceState:
    device_id: str
    kind: DeviceKind = DeviceKind.UNKNOWN
    presence: PresenceState = PresenceState.UNKNOWN
    session: int = 0
    agent_version: str = ""
    last_seen: datetime | None = None


def presence_rank(session: int, state: PresenceState) -> tuple[int, int]:
    """Order of presence messages: by session, and within one session offline after online.

    A last will from an earlier connection can reach us after the online of a newer one (the
    broker publishes it when it notices the old socket is dead); its lower session loses.
    """
    return (session, 1 if state is PresenceState.OFFLINE else 0)


class FleetState:
    """Every device's live state, keyed by device id."""

    def __init__(self, devices: Iterable[DeviceState] = ()) -> None:
        self._devices = {d.device_id: d for d in devices}

    def __len__(self) -> int:
        return len(self._devices)

    def __iter__(self) -> Iterator[DeviceState]:
        return iter(self._devices.values())

    def get(self, device_id: str) -> DeviceState | None:
        return self._devices.get(device_id)

    def apply_presence(
        self, device_id: str, presence: Presence, received_at: datetime
    ) -> DeviceState | None:
        """Apply a presence message; returns the new state, or None if it changed nothing."""
        if presence.state is PresenceState.UNKNOWN:
            return None
        current = self._devices.get(device_id) or DeviceState(device_id)
        incoming = presence_rank(presence.session, presence.state)
        if incoming <= presence_rank(current.session, current.presence):
            return None
        updated = replace(
            current,
            presence=presence.state,
            session=presence.session,
            kind=presence.kind if presence.kind is not DeviceKind.UNKNOWN else current.kind,
            agent_version=presence.agent_version or current.agent_version,
            last_seen=received_at,
        )
        self._devices[device_id] = updated
        return updated

    def apply_heartbeat(
        self, device_id: str, heartbeat: Heartbeat, received_at: datetime
    ) -> DeviceState:
        """Record contact. A heartbeat never flips presence: only presence messages do."""
        current = self._devices.get(device_id) or DeviceState(device_id)
        updated = replace(
            current,
            agent_version=heartbeat.agent_version or current.agent_version,
            last_seen=received_at,
        )
        self._devices[device_id] = updated
        return updated

    def counts(self) -> Counter[tuple[DeviceKind, PresenceState]]:
        """Devices by (kind, presence)."""
        return Counter((d.kind, d.presence) for d in self._devices.values())
