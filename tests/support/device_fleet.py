"""A small registry of devices for the device API's tests, on the tree of ``scoped_fleet``.

    district hall s440117 (open 09:00-17:00): kiosk-d1, pad-d1 at window 01, pad-d2 at 02
    town A s440117001 (24/7):                 kiosk-a, booth-a
    village A1 s440117001001 (09:00-12:00):   station-a1
    town B s440117002 (24/7):                 kiosk-b
    town X s4401170010 (24/7):                kiosk-x (its code starts with town A's)
    nowhere:                                  kiosk-unplaced

At ``NOW`` (a Monday, 13:00 in Guangzhou) the village station is closed and the district hall
open. Presence, health (with peripherals) and records are given to some of them through the
same code the ingest uses (``registry.save_state``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import test_utils, web

from control_plane import registry
from control_plane.db import database
from control_plane.db.models import Device, StoredRecord
from control_plane.fleet import DeviceState, FleetState
from control_plane.http.app import make_app
from control_plane.ingest import Ingest
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.metrics import ControlPlaneMetrics
from control_plane.server import refresh_placements
from control_plane.site_cache import SiteCache
from edge.protocol import (
    DeviceKind,
    Heartbeat,
    OfflineReason,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
    PresenceState,
)
from tests.support.scoped_fleet import DISTRICT, NODES, TOWN_A, TOWN_B, TOWN_X, VILLAGE_A1

NOW = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)  # Monday 13:00 +08:00
UNPLACED = "kiosk-unplaced"
ApiClient = test_utils.TestClient[web.Request, web.Application]

SITES = {
    f"s{DISTRICT}": (DISTRICT, "district", "从化区政务服务中心", "mon-fri 09:00-17:00"),
    f"s{TOWN_A}": (TOWN_A, "town", "街口街便民服务中心", "24/7"),
    f"s{VILLAGE_A1}": (VILLAGE_A1, "village", "新村村居服务站", "mon-fri 09:00-12:00"),
    f"s{TOWN_B}": (TOWN_B, "town", "城郊街便民服务中心", "24/7"),
    f"s{TOWN_X}": (TOWN_X, "town", "江埔街便民服务中心", "24/7"),
}
"""Site code → (node, level, name, hours)."""


@dataclass(frozen=True)
class Planned:
    kind: str
    site: str | None
    window: str | None = None
    serial: str = ""
    labels: tuple[tuple[str, str], ...] = ()


DEVICES = {
    "kiosk-d1": Planned("kiosk", f"s{DISTRICT}", serial="SN-D1", labels=(("floor", "1"),
                                                                          ("vendor", "inspur"))),
    "pad-d1": Planned("review_pad", f"s{DISTRICT}", "01"),
    "pad-d2": Planned("review_pad", f"s{DISTRICT}", "02", labels=(("vendor", "hisense"),)),
    "kiosk-a": Planned("kiosk", f"s{TOWN_A}", labels=(("vendor", "inspur"),)),
    "booth-a": Planned("booth", f"s{TOWN_A}"),
    "station-a1": Planned("station_pc", f"s{VILLAGE_A1}"),
    "kiosk-b": Planned("kiosk", f"s{TOWN_B}", serial="SN-B-77"),
    "kiosk-x": Planned("kiosk", f"s{TOWN_X}"),
}  # fmt: skip
NODE_OF_SITE = {code: node for code, (node, *_rest) in SITES.items()}
ANCESTORS = {code: parent for code, _, parent in NODES}


def within(node: str | None, scope: str | None) -> bool:
    """Whether ``node`` is ``scope`` or below it, by walking parents (None: placed nowhere)."""
    while node:
        if node == scope:
            return True
        node = ANCESTORS[node]
    return scope is None


def node_of(device_id: str) -> str | None:
    site = DEVICES[device_id].site if device_id in DEVICES else None
    return NODE_OF_SITE[site] if site else None


def visible(scope: str | None) -> set[str]:
    """The device ids a token for ``scope`` must see, by walking parents."""
    return {d for d in [*DEVICES, UNPLACED] if within(node_of(d), scope)}


def document() -> dict[str, Any]:
    return {
        "jurisdiction": [
            {"code": code, "name": f"n{code}", "level": level, "parent": parent or None}
            for code, level, parent in NODES
        ],
        "sites": [
            {"code": code, "name": name, "level": level, "node": node, "hours": hours}
            for code, (node, level, name, hours) in SITES.items()
        ],
        "windows": [
            {"site": f"s{DISTRICT}", "number": number} for number in ("01", "02")
        ],
        "devices": [
            {"device_id": device_id, "kind": p.kind, "site": p.site, "window": p.window,
             "serial": p.serial, "labels": dict(p.labels)}
            for device_id, p in DEVICES.items()
        ],
    }  # fmt: skip


PRINTER_OUT = PeripheralStatus(
    name="printer0",
    kind=PeripheralKind.RECEIPT_PRINTER,
    state=PeripheralState.FAULT,
    reason="paper_out",
    model="TP-80",
    firmware="2.1.4",
)
READER_OK = PeripheralStatus(
    name="idreader0", kind=PeripheralKind.ID_CARD_READER, state=PeripheralState.OK, model="IDR"
)
CAMERA_DEGRADED = PeripheralStatus(
    name="camera0", kind=PeripheralKind.DOCUMENT_CAMERA, state=PeripheralState.DEGRADED
)


def health(*peripherals: PeripheralStatus, seq: int = 1) -> Heartbeat:
    return Heartbeat(
        session=1, seq=seq, full=True, agent_version="0.3.0", peripherals=tuple(peripherals)
    )


LIVE = {
    "kiosk-d1": (PresenceState.ONLINE, health(PRINTER_OUT, READER_OK)),
    "pad-d1": (PresenceState.OFFLINE, None),  # hall open: offline_unexpected
    "kiosk-a": (PresenceState.ONLINE, health(READER_OK)),
    "station-a1": (PresenceState.OFFLINE, health(CAMERA_DEGRADED)),  # closed: expected
    "kiosk-b": (PresenceState.ONLINE, health(PRINTER_OUT)),
}
"""What the ingest has heard of some of the devices: presence, and health (None: none)."""
RECORDS = 30
"""Records stored for kiosk-d1, seqs 1 to 30."""


async def populate() -> None:
    """Import the registry, then store presence, health and records as the ingest would."""
    await import_inventory(read_json(json.dumps(document()), "devices.json"))
    await registry.save_state(DeviceState(UNPLACED, DeviceKind.KIOSK))
    for device_id, (presence, heard) in LIVE.items():
        await registry.save_state(
            DeviceState(
                device_id,
                DeviceKind(DEVICES[device_id].kind),
                presence,
                session=1,
                agent_version="0.3.0",
                last_seen=NOW - timedelta(seconds=10),
                health=heard,
                offline_reason=OfflineReason.WILL if presence is PresenceState.OFFLINE else
                OfflineReason.NONE,
            )
        )  # fmt: skip
    await Device.filter(device_id="kiosk-a").update(lifecycle="in_service")
    await StoredRecord.bulk_create(
        [
            StoredRecord(
                device_id="kiosk-d1",
                seq=seq,
                channel="event",
                type="paper_out",
                received_at=NOW - timedelta(minutes=RECORDS - seq),
                payload=json.dumps({"v": 1, "seq": seq, "type": "paper_out"}),
            )
            for seq in range(1, RECORDS + 1)
        ]
    )


async def load_fleet() -> FleetState:
    """The fleet state as the server builds it at start (``heartbeat_timeout_s`` off)."""
    fleet = FleetState(await registry.load_states())
    await refresh_placements(fleet, SiteCache(fleet))
    return fleet


@dataclass
class DeviceApi:
    client: ApiClient
    fleet: FleetState


@contextlib.asynccontextmanager
async def device_api(
    database_url: str, clock: Callable[[], datetime] = lambda: NOW
) -> AsyncIterator[DeviceApi]:
    """The REST API over the registry above, with the database open (tokens live there)."""
    async with database(database_url):
        await populate()
        fleet = await load_fleet()
        metrics = ControlPlaneMetrics(fleet)
        app = make_app(fleet, metrics, Ingest(fleet, metrics), clock=clock)
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            yield DeviceApi(client, fleet)
