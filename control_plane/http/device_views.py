"""The JSON views of devices: a listing's row, and the whole device. Pure.

The registry's fields (kind, serial, labels, lifecycle, placement) come from the database; the
live ones (presence, availability, session, last contact, health) from the fleet state, which
the ingest keeps current between database writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from control_plane.db.inventory_models import AgentInventory, PeripheralInventory
from control_plane.db.models import StoredRecord
from control_plane.device_queries import DeviceRecord, Placement
from control_plane.fleet import DeviceState, FleetState
from edge.protocol import Heartbeat


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def live_state(fleet: FleetState, device_id: str, placement: Placement | None) -> DeviceState:
    """The fleet's state of the device; for one it has not heard of, an unknown presence."""
    state = fleet.get(device_id)
    if state is not None:
        return state
    return DeviceState(device_id, site=placement.site if placement else "")


def matches_presence(fleet: FleetState, state: DeviceState, wanted: str, now: datetime) -> bool:
    """Whether the device's presence or availability at ``now`` is ``wanted``."""
    presence = fleet.effective(state, now)
    return wanted in {presence.state.value, presence.availability.value}


def device_view(
    fleet: FleetState,
    row: Mapping[str, Any],
    placement: Placement | None,
    now: datetime,
) -> dict[str, Any]:
    """A listing's row: ``row`` holds ``device_queries.LIST_COLUMNS``."""
    state = live_state(fleet, str(row["device_id"]), placement)
    presence = fleet.effective(state, now)
    return {
        "device_id": row["device_id"],
        "kind": row["kind"],
        "serial": row["serial"],
        "lifecycle": row["lifecycle"],
        "labels": row["labels"] or {},
        "presence": presence.state.value,
        "presence_reason": presence.reason,
        "availability": presence.availability.value,
        "site": placement.site if placement else None,
        "site_name": placement.site_name if placement else None,
        "site_path": placement.site_path if placement else None,
        "window": placement.window if placement else None,
        "session": state.session,
        "agent_version": state.agent_version or row["agent_version"],
        "last_seen": _iso(state.last_seen or row["last_seen"]),
        "health": msgspec.to_builtins(state.health) if state.health else None,
    }


def detail_view(fleet: FleetState, found: DeviceRecord, now: datetime) -> dict[str, Any]:
    """The whole device: its row, inventory, last health and most recent records."""
    device = found.device
    row = {column: getattr(device, column) for column in _ROW_COLUMNS}
    view = device_view(fleet, row, found.placement, now)
    if view["health"] is None and device.last_health:
        # Not heard since this server started: the health stored last is what there is.
        view["health"] = _stored_health(device.last_health)
    return {
        **view,
        "first_seen": _iso(device.first_seen),
        "agent": _agent_view(found.agent),
        "peripherals": [_peripheral_view(p) for p in found.peripherals],
        "recent_records": [_record_view(r) for r in found.records],
    }


_ROW_COLUMNS = (
    "device_id",
    "kind",
    "serial",
    "labels",
    "lifecycle",
    "agent_version",
    "last_seen",
)


def _stored_health(stored: dict[str, object]) -> dict[str, Any] | None:
    try:
        health = msgspec.convert(stored, Heartbeat)
    except msgspec.ValidationError:
        return None
    builtins: dict[str, Any] = msgspec.to_builtins(health)
    return builtins


def _agent_view(agent: AgentInventory | None) -> dict[str, Any] | None:
    if agent is None:
        return None
    return {
        "agent_version": agent.agent_version,
        "os": agent.os,
        "hardware_model": agent.hardware_model,
        "changed_at": _iso(agent.changed_at),
    }


def _peripheral_view(peripheral: PeripheralInventory) -> dict[str, Any]:
    return {
        "name": peripheral.name,
        "kind": peripheral.kind,
        "status": peripheral.status,
        "reason": peripheral.reason,
        "model": peripheral.model,
        "firmware": peripheral.firmware,
        "status_since": _iso(peripheral.status_since),
        "changed_at": _iso(peripheral.changed_at),
    }


def _record_view(record: StoredRecord) -> dict[str, Any]:
    try:
        payload: object = msgspec.json.decode(record.payload)
    except msgspec.DecodeError:
        payload = record.payload  # stored as sent; show it as text
    return {
        "seq": record.seq,
        "channel": record.channel,
        "type": record.type,
        "device_time": _iso(record.device_time),
        "received_at": _iso(record.received_at),
        "payload": payload,
    }
