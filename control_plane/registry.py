"""Device rows in the database: load the live state at start, write it when it changes, list it.

A device's inventory (``db/inventory_models.py``) and its label rows are written here too, in
the transaction that writes the device, so they always agree with ``device.last_health`` and
``device.labels``: the stored health is what the inventory is compared against.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

import msgspec
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edge.protocol import DeviceKind, Heartbeat, PresenceState
from edge.schedule import OpeningHours, ScheduleError

from . import device_rows
from .db.inventory_models import DeviceLabel
from .db.models import Device, JurisdictionNode, ServiceWindow, Site
from .device_inventory import AgentFacts, Inventory, Peripheral, changes, inventory_of
from .fleet import DeviceState
from .sites import opening_hours

log = logging.getLogger(__name__)

LABEL_CHUNK = 500
SAVE_CHUNK = 500
"""Devices a transaction of ``save_states`` writes: the rows it locks at once."""


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
    """Write one device's state (see ``save_states``)."""
    await save_states([state])


async def save_states(states: Sequence[DeviceState]) -> None:
    """Write the devices' states (insert or update), and their inventory where that changed.

    A kind a state does not know (a heartbeat before the first presence) leaves a known kind,
    such as an imported one, as it is. One transaction for each ``SAVE_CHUNK`` devices, taken
    in device order so that two replicas writing the same devices wait rather than deadlock.
    """
    ordered = sorted(states, key=lambda s: s.device_id)
    first_seen = datetime.now(UTC)
    for start in range(0, len(ordered), SAVE_CHUNK):
        chunk = ordered[start : start + SAVE_CHUNK]
        async with in_transaction() as conn:
            ids = [s.device_id for s in chunk]
            rows = await Device.filter(device_id__in=ids).select_for_update().using_db(conn)
            before = {row.device_id: stored(row) for row in rows}
            await device_rows.upsert_states(conn, chunk, first_seen)
            await _write_inventory(conn, chunk, before, first_seen)


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
    conn: BaseDBAsyncClient,
    states: Sequence[DeviceState],
    before: Mapping[str, Inventory],
    now: datetime,
) -> None:
    """Bring each device's inventory rows from ``before`` (none: no rows) to its state."""
    agents: list[tuple[str, AgentFacts, datetime]] = []
    peripherals: list[tuple[str, Peripheral, datetime]] = []
    gone: list[tuple[str, str]] = []
    for state in states:
        after = inventory_of(state.agent_version, state.health, heard=True)
        change = changes(before.get(state.device_id, Inventory()), after)
        at = state.last_seen or now
        if change.agent is not None:
            agents.append((state.device_id, change.agent, at))
        peripherals += [(state.device_id, p, at) for p in change.upserts]
        gone += [(state.device_id, name) for name in change.removed]
    await device_rows.upsert_agents(conn, agents)
    await device_rows.upsert_peripherals(conn, peripherals)
    await device_rows.delete_peripherals(conn, gone)


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
