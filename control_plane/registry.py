"""Device rows in the database: load the live state at start, write it when it changes, list it.

A device's inventory (``db/inventory_models.py``) and its label rows are written here too, in
the transaction that writes the device, so they always agree with ``device.last_health`` and
``device.labels``: the stored health is what the inventory is compared against.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from edge.protocol import DeviceKind, Heartbeat, PresenceState
from edge.schedule import OpeningHours, ScheduleError

from .db.inventory_models import AgentInventory, DeviceLabel, PeripheralInventory
from .db.models import Device, JurisdictionNode, ServiceWindow, Site
from .device_inventory import Inventory, InventoryChange, changes, inventory_of
from .fleet import DeviceState
from .sites import opening_hours

log = logging.getLogger(__name__)

LABEL_CHUNK = 500
SAVE_ATTEMPTS = 3
"""Tries of update-else-insert; another replica inserting the same new device costs one."""


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
    """Write one device's state (insert or update), and its inventory where that changed.

    A kind the state does not know (a heartbeat before the first presence) leaves a known
    kind, such as an imported one, as it is.
    """
    values: dict[str, Any] = {
        "kind": state.kind.value,
        "presence": state.presence.value,
        "presence_session": state.session,
        "agent_version": state.agent_version,
        "last_seen": state.last_seen,
        "last_health": msgspec.to_builtins(state.health) if state.health else None,
    }
    after = inventory_of(state.agent_version, state.health, heard=True)
    at = state.last_seen or datetime.now(UTC)
    for _ in range(SAVE_ATTEMPTS):
        async with in_transaction() as conn:
            row = (
                await Device.select_for_update()
                .using_db(conn)
                .get_or_none(device_id=state.device_id)
            )
            if row is not None:
                if state.kind is DeviceKind.UNKNOWN:
                    del values["kind"]
                await Device.filter(device_id=state.device_id).using_db(conn).update(**values)
                await _write_inventory(conn, state.device_id, changes(stored(row), after), at)
                return
        try:
            async with in_transaction() as conn:
                await Device.create(using_db=conn, device_id=state.device_id, **values)
                await _write_inventory(conn, state.device_id, changes(Inventory(), after), at)
        except IntegrityError:
            continue  # inserted by another replica meanwhile: update it
        return
    msg = f"device {state.device_id}: could not write its state in {SAVE_ATTEMPTS} attempts"
    raise OperationalError(msg)


def stored(row: Device) -> Inventory:
    """The inventory a device's stored row implies: what its inventory rows hold."""
    health: Heartbeat | None = None
    if row.last_health:
        try:
            health = msgspec.convert(row.last_health, Heartbeat)
        except msgspec.ValidationError:
            # Unreadable: every peripheral then counts as new, and is written over its row.
            log.warning("device %s: stored health unreadable", row.device_id)
    heard = row.last_seen is not None or bool(row.agent_version) or row.last_health is not None
    return inventory_of(row.agent_version, health, heard=heard)


async def _write_inventory(
    conn: BaseDBAsyncClient, device_id: str, change: InventoryChange, at: datetime
) -> None:
    """Apply a change; each row is updated, or created when there is none to update."""
    if change.agent is not None:
        agent = {
            "agent_version": change.agent.agent_version,
            "os": change.agent.os,
            "hardware_model": change.agent.hardware_model,
            "changed_at": at,
        }
        if not await AgentInventory.filter(device_id=device_id).using_db(conn).update(**agent):
            await AgentInventory.create(using_db=conn, device_id=device_id, **agent)
    for peripheral in change.upserts:
        columns: dict[str, Any] = {
            "kind": peripheral.kind,
            "status": peripheral.status,
            "reason": peripheral.reason,
            "model": peripheral.model,
            "firmware": peripheral.firmware,
            "changed_at": at,
        }
        if peripheral.name in change.status_changed:
            columns["status_since"] = at
        same = PeripheralInventory.filter(device_id=device_id, name=peripheral.name)
        if not await same.using_db(conn).update(**columns):
            columns.setdefault("status_since", at)
            await PeripheralInventory.create(
                using_db=conn, device_id=device_id, name=peripheral.name, **columns
            )
    if change.removed:
        gone = PeripheralInventory.filter(device_id=device_id, name__in=change.removed)
        await gone.using_db(conn).delete()


async def write_labels(
    labels_by_device: Mapping[str, Mapping[str, str]], conn: BaseDBAsyncClient | None = None
) -> None:
    """Make the label rows of each device listed match its labels (``device.labels``).

    Whoever writes ``device.labels`` calls this in the same transaction (the API, the import).
    """
    device_ids = list(labels_by_device)
    have: dict[str, dict[str, str]] = {device_id: {} for device_id in device_ids}
    for start in range(0, len(device_ids), LABEL_CHUNK):
        chunk = device_ids[start : start + LABEL_CHUNK]
        rows = await DeviceLabel.filter(device_id__in=chunk).using_db(conn)
        for row in rows:
            have[row.device_id][row.key] = row.value
    new: list[DeviceLabel] = []
    for device_id, wanted in labels_by_device.items():
        current = have[device_id]
        stale = [k for k, v in current.items() if wanted.get(k) != v]
        if stale:
            await DeviceLabel.filter(device_id=device_id, key__in=stale).using_db(conn).delete()
        new += [
            DeviceLabel(device_id=device_id, key=k, value=v)
            for k, v in wanted.items()
            if current.get(k) != v
        ]
    await DeviceLabel.bulk_create(new, batch_size=LABEL_CHUNK, using_db=conn)


async def load_placements() -> dict[str, str]:
    """Every placed device's site code, by device id."""
    rows = await Device.filter(site_id__not_isnull=True).values_list("device_id", "site__code")
    return {str(device_id): str(site) for device_id, site in rows}


async def load_site_paths() -> dict[str, str]:
    """Every site's jurisdiction path (its node's), by site code."""
    rows = await Site.all().values_list("code", "node__path")
    return {str(code): str(path) for code, path in rows}


async def load_opening_hours() -> dict[str, OpeningHours]:
    """Every site's opening hours by site code.

    A site whose hours cannot be read is left out (its offline devices then count as
    unexpected) and logged.
    """
    hours: dict[str, OpeningHours] = {}
    for site in await Site.all():
        try:
            hours[site.code] = opening_hours(site)
        except (ScheduleError, ValueError) as exc:
            log.warning("site %s: opening hours %r unreadable: %s", site.code, site.hours, exc)
    return hours


async def load_site_rows() -> list[tuple[str, str, str]]:
    """Every site as (code, hall level, its node's path): what its metric labels come from."""
    rows = await Site.all().values_list("code", "level", "node__path")
    return [(str(code), str(level), str(path)) for code, level, path in rows]


async def load_node_rows(codes: Collection[str] | None = None) -> list[tuple[str, str, str]]:
    """Nodes of the tree as (code, level, path): every one, or those ``codes`` name."""
    query = JurisdictionNode.all() if codes is None else JurisdictionNode.filter(code__in=codes)
    rows = await query.values_list("code", "level", "path")
    return [(str(code), str(level), str(path)) for code, level, path in rows]


async def load_windows(site_code: str | None = None) -> list[tuple[str, int]]:
    """Service windows as (site code, window id): every site's, or one site's."""
    query = ServiceWindow.all() if site_code is None else ServiceWindow.filter(site__code=site_code)
    rows = await query.values_list("site__code", "id")
    return [(str(code), int(window)) for code, window in rows]


async def load_pad_windows() -> dict[str, int]:
    """The window id of every device bound to one, by device id."""
    rows = await Device.filter(window_id__not_isnull=True).values_list("device_id", "window_id")
    return {str(device_id): int(window) for device_id, window in rows}
