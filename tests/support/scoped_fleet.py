"""A small tree with devices in two towns, and the REST API over it, for scope tests.

    44 省 → 4401 市 → 440117 区 ─┬ 440117001 town A ─ 440117001001 village A1
                                 ├ 440117002 town B
                                 └ 4401170010 town X (its code starts with town A's)

A device at each of their sites, one at the district hall and one placed nowhere.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from aiohttp import test_utils, web

from control_plane import registry
from control_plane.db import database
from control_plane.fleet import DeviceState, FleetState
from control_plane.http.app import make_app
from control_plane.ingest import Ingest
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.metrics import ControlPlaneMetrics
from edge.protocol import DeviceKind

PROVINCE, DISTRICT = "44", "440117"
TOWN_A, VILLAGE_A1, TOWN_B, TOWN_X = "440117001", "440117001001", "440117002", "4401170010"
UNPLACED = "kiosk-unplaced"
DEVICES_AT = {
    "kiosk-a": TOWN_A,
    "pad-a1": VILLAGE_A1,
    "kiosk-b": TOWN_B,
    "kiosk-x": TOWN_X,
    "kiosk-d": DISTRICT,
}
"""Each placed device, by the node its site hangs off."""
NODES = (
    (PROVINCE, "province", ""),
    ("4401", "city", PROVINCE),
    (DISTRICT, "district", "4401"),
    (TOWN_A, "town", DISTRICT),
    (VILLAGE_A1, "village", TOWN_A),
    (TOWN_B, "town", DISTRICT),
    (TOWN_X, "town", DISTRICT),
)
ANCESTORS = {code: parent for code, _, parent in NODES}
LEVELS = {code: level for code, level, _ in NODES}
ApiClient = test_utils.TestClient[web.Request, web.Application]


def within(node: str, scope: str | None) -> bool:
    """Whether ``node`` is ``scope`` or below it, by walking parents (the obvious way)."""
    while node:
        if node == scope:
            return True
        node = ANCESTORS[node]
    return scope is None


def visible(scope: str | None) -> set[str]:
    """The device ids a token for ``scope`` (None: the whole tree) must see, and no more."""
    placed = {device for device, node in DEVICES_AT.items() if within(node, scope)}
    return placed | ({UNPLACED} if scope is None else set())


def document() -> str:
    return json.dumps(
        {
            "jurisdiction": [
                {"code": code, "name": f"n{code}", "level": level, "parent": parent or None}
                for code, level, parent in NODES
            ],
            "sites": [
                {"code": f"s{node}", "name": f"site {node}", "level": LEVELS[node], "node": node,
                 "hours": "24/7"}
                for node in sorted(set(DEVICES_AT.values()))
            ],
            "devices": [
                {"device_id": device, "kind": "kiosk", "site": f"s{node}"}
                for device, node in DEVICES_AT.items()
            ],
        }
    )  # fmt: skip


async def load_fleet() -> FleetState:
    """The fleet as the server builds it at start, plus a device heard of but placed nowhere."""
    await registry.save_state(DeviceState(UNPLACED, DeviceKind.KIOSK))  # as the ingest would
    fleet = FleetState(await registry.load_states())
    fleet.set_opening_hours(await registry.load_opening_hours())
    fleet.set_site_paths(await registry.load_site_paths())
    fleet.place(await registry.load_placements())
    return fleet


@contextlib.asynccontextmanager
async def scoped_api(
    database_url: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> AsyncIterator[ApiClient]:
    """The REST API on the tree above, with the database open (tokens live there)."""
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        fleet = await load_fleet()
        metrics = ControlPlaneMetrics(fleet)
        app = make_app(fleet, metrics, Ingest(fleet, metrics), clock=clock)
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            yield client
