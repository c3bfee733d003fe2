"""The device registry read from the database: filtered pages of devices, and one device whole.

Every filter but presence is a condition on indexed columns: a subtree is one range of
jurisdiction paths (``sites.devices_under``), a fault is a lookup in ``device_peripheral`` by
(kind, status), a label one in ``device_label`` by (key, value). Pages are keyset pages on
``device_id``, the primary key, so page 1,000 costs what page 1 does.

Presence is live: the fleet state works it out at the moment of the request from the last
presence message, heartbeat silence and the site's opening hours (``offline_expected``), so no
column could hold it. The database therefore hands out candidates in ``device_id`` order, in
chunks that double while the page is not full, and the caller's ``keep`` decides each one in
memory. A common presence (most of a fleet is online in opening hours) fills a page from the
first chunk; a rare one (offline_unexpected) walks further, at a cost of one indexed read of
ids per chunk rather than a check of the whole fleet on every request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from . import jurisdiction
from .db.inventory_models import AgentInventory, DeviceLabel, PeripheralInventory
from .db.models import Device, JurisdictionNode, ServiceWindow, Site, StoredRecord
from .device_filters import ANY_FAULT, DeviceFilters, QueryError
from .device_inventory import NEEDS_ATTENTION
from .inventory import DEVICE_ID
from .inventory import NAME as SITE
from .scope_lookup import could_be
from .sites import devices_under

LIST_COLUMNS = (
    "device_id",
    "kind",
    "serial",
    "labels",
    "lifecycle",
    "site_id",
    "window_id",
    "presence",
    "agent_version",
    "last_seen",
)
"""What a listing reads of a device: not ``last_health``, whose JSON is the costly part."""
FIRST_CHUNK = 200
MAX_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a device is: its site and window, and the site's place in the tree."""

    site: str
    site_name: str
    site_path: str
    window: str | None = None


async def candidates(filters: DeviceFilters, scope_path: str | None) -> QuerySet[Device]:
    """The devices that pass every filter but presence, within a token's scope (None: all).

    A ``node`` or ``site`` the scope does not reach is refused as one that does not exist, so
    that a filter cannot tell a token what lies outside its scope.
    """
    path = scope_path
    if filters.node is not None:
        path = await _node_within(filters.node, scope_path)
    query = Device.all() if path is None else devices_under(path)
    if filters.site is not None:
        query = query.filter(site_id=await _site_within(filters.site, scope_path))
    if filters.kind is not None:
        query = query.filter(kind=filters.kind)
    if filters.lifecycle is not None:
        query = query.filter(lifecycle=filters.lifecycle)
    if filters.fault is not None:
        faulty = PeripheralInventory.filter(status__in=NEEDS_ATTENTION)
        if filters.fault != ANY_FAULT:
            faulty = faulty.filter(kind=filters.fault)
        query = query.filter(device_id__in=Subquery(faulty.values("device_id")))
    for key, value in filters.labels:
        labelled = DeviceLabel.filter(key=key, value=value).values("device_id")
        query = query.filter(device_id__in=Subquery(labelled))
    if filters.text is not None:
        named = Site.filter(name__icontains=filters.text).values("id")
        query = query.filter(
            Q(device_id__icontains=filters.text)
            | Q(serial__icontains=filters.text)
            | Q(site_id__in=Subquery(named))
        )
    return query


async def _node_within(code: str, scope_path: str | None) -> str:
    """The path to search for ``?node=``: the node's subtree, cut down to the scope."""
    node = None
    if could_be(jurisdiction.CODE, code):
        node = await JurisdictionNode.get_or_none(code=code).values("path")
    if node is not None:
        path = str(node["path"])
        if scope_path is None or jurisdiction.is_within(path, scope_path):
            return path
        if jurisdiction.is_within(scope_path, path):
            return scope_path  # a node above the scope: the scope is all of it the token sees
    raise QueryError(parameter="node", message=f"{code!r} is no node in this token's scope")


async def _site_within(code: str, scope_path: str | None) -> int:
    sites = await Site.filter(code=code).values("id", "node__path") if could_be(SITE, code) else []
    for site in sites:
        if scope_path is None or jurisdiction.is_within(site["node__path"], scope_path):
            return int(site["id"])
    raise QueryError(parameter="site", message=f"{code!r} is no site in this token's scope")


async def page(
    query: QuerySet[Device], after: str, limit: int, keep: Callable[[str], bool] | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` devices after ``after`` in id order, and whether more follow.

    With ``keep``, only the devices it keeps (by id): see the module's note on presence.
    """
    if keep is None:
        rows = await _rows(query, after, limit + 1)
        return rows[:limit], len(rows) > limit
    kept: list[dict[str, Any]] = []
    chunk = max(FIRST_CHUNK, limit + 1)
    while True:
        ids = await _ids(query, after, chunk)
        wanted = [device_id for device_id in ids if keep(device_id)][: limit + 1 - len(kept)]
        if wanted:
            found = await _rows(Device.filter(device_id__in=wanted), "", 0)
            by_id = {str(row["device_id"]): row for row in found}
            # In the database's order, which the next page's device_id > after relies on.
            kept += [by_id[device_id] for device_id in wanted if device_id in by_id]
        if len(kept) > limit or len(ids) < chunk:
            return kept[:limit], len(kept) > limit
        after, chunk = ids[-1], min(chunk * 2, MAX_CHUNK)


async def _ids(query: QuerySet[Device], after: str, limit: int) -> list[str]:
    found = query.filter(device_id__gt=after) if after else query
    ids = await found.order_by("device_id").limit(limit).values_list("device_id", flat=True)
    return [str(device_id) for device_id in ids]


async def _rows(query: QuerySet[Device], after: str, limit: int) -> list[dict[str, Any]]:
    """The listed columns of the devices; ``limit`` 0: all of them (already bounded)."""
    found = query.filter(device_id__gt=after) if after else query
    found = found.order_by("device_id")
    if limit:
        found = found.limit(limit)
    return list(await found.values(*LIST_COLUMNS))


async def listing_row(device_id: str) -> tuple[dict[str, Any], Placement | None]:
    """One device as a listing shows it (it must exist)."""
    rows = await _rows(Device.filter(device_id=device_id), "", 0)
    found = await placements(rows)
    return rows[0], found.get(device_id)


async def placements(rows: Sequence[dict[str, Any]]) -> dict[str, Placement]:
    """Where each listed device is, by device id; two queries for a whole page."""
    site_ids = {row["site_id"] for row in rows if row["site_id"] is not None}
    window_ids = {row["window_id"] for row in rows if row["window_id"] is not None}
    sites: dict[int, dict[str, Any]] = {}
    if site_ids:
        columns = ("id", "code", "name", "node__path")
        sites = {site["id"]: site for site in await Site.filter(id__in=site_ids).values(*columns)}
    windows: dict[int, str] = {}
    if window_ids:
        rows_ = await ServiceWindow.filter(id__in=window_ids).values_list("id", "number")
        windows = {int(window_id): str(number) for window_id, number in rows_}
    found: dict[str, Placement] = {}
    for row in rows:
        site = sites.get(row["site_id"])
        if site is not None:
            found[row["device_id"]] = Placement(
                site["code"], site["name"], site["node__path"], windows.get(row["window_id"])
            )
    return found


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """Everything the detail view shows of one device from the database."""

    device: Device
    placement: Placement | None
    agent: AgentInventory | None
    peripherals: list[PeripheralInventory]
    records: list[StoredRecord]


async def device_path(device_id: str) -> tuple[Device, Placement | None] | None:
    """The device and where it is, or None when there is no such device."""
    if not DEVICE_ID.fullmatch(device_id):
        return None  # no device can have that id: not worth a query
    device = await Device.get_or_none(device_id=device_id)
    if device is None:
        return None
    found = await placements([{"device_id": device_id, "site_id": device.site_id,
                               "window_id": device.window_id}])  # fmt: skip
    return device, found.get(device_id)


async def detail(device: Device, placement: Placement | None, records: int) -> DeviceRecord:
    """The device's inventory and its ``records`` most recent records, newest first."""
    agent = await AgentInventory.get_or_none(device_id=device.device_id)
    peripherals = await PeripheralInventory.filter(device_id=device.device_id).order_by("name")
    # Newest by the device's own sequence: the (device_id, seq) unique index reads it backwards.
    recent = await StoredRecord.filter(device_id=device.device_id).order_by("-seq").limit(records)
    return DeviceRecord(device, placement, agent, list(peripherals), list(recent))
