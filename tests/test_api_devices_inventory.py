"""Agent and peripheral inventory on SQLite and PostgreSQL: kept from heartbeats, written on change.

Through the ingest's own path (``Ingest.handle`` → its batch of device states) without a broker,
through a real server and broker once, and for devices stored before migration 0004.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from control_plane import registry
from control_plane.db import client, connect, database, migrator
from control_plane.db.inventory_models import AgentInventory, DeviceLabel, PeripheralInventory
from control_plane.db.models import Device
from control_plane.fleet import DeviceState, FleetState
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.mqtt import Incoming
from edge.protocol import (
    Channel,
    DeviceKind,
    Heartbeat,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
    Presence,
    PresenceState,
    encode,
)
from edge.protocol import topics as wire
from tests.support.control_plane import running_control_plane

DEVICE = "kiosk-440117000-01"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
PRINTER_OK = PeripheralStatus(
    name="printer0", kind=PeripheralKind.RECEIPT_PRINTER, state=PeripheralState.OK, model="TP-80"
)
PRINTER_JAM = PeripheralStatus(
    name="printer0",
    kind=PeripheralKind.RECEIPT_PRINTER,
    state=PeripheralState.FAULT,
    reason="jam",
    model="TP-80",
)
READER = PeripheralStatus(
    name="idreader0", kind=PeripheralKind.ID_CARD_READER, state=PeripheralState.OK
)


class Heard:
    """Feeds one device's heartbeats to the ingest, a minute apart."""

    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest
        self.seq = 0
        self.now = T0

    async def heartbeat(self, *peripherals: PeripheralStatus, cpu: float = 10.0) -> None:
        self.seq += 1
        self.now += timedelta(minutes=1)
        beat = Heartbeat(
            session=1,
            seq=self.seq,
            full=True,
            cpu_percent=cpu,
            agent_version="0.3.0",
            os="Kylin V10 (SP1)",
            hardware_model="ZW-21A",
            peripherals=peripherals,
        )
        message = Incoming(wire.uplink(DEVICE, Channel.HEALTH), encode(beat), retain=False)
        assert await self.ingest.handle(message)
        await self.ingest.states.flush()  # what the ingest's writer task does within 0.5 s


@pytest.fixture
async def heard(database_url: str) -> AsyncIterator[Heard]:
    async with database(database_url):
        fleet = FleetState()
        feed = Heard(Ingest(fleet, ControlPlaneMetrics(fleet)))
        feed.ingest._clock = lambda: feed.now  # noqa: SLF001 - the ingest's injected clock
        yield feed


async def peripherals() -> dict[str, tuple[str, datetime, datetime]]:
    """Each peripheral's status, status_since and changed_at."""
    rows = await PeripheralInventory.filter(device_id=DEVICE)
    return {row.name: (row.status, row.status_since, row.changed_at) for row in rows}


async def test_the_first_heartbeat_writes_the_inventory(heard: Heard) -> None:
    await heard.heartbeat(PRINTER_OK, READER)

    agent = await AgentInventory.get(device_id=DEVICE)
    assert (agent.agent_version, agent.os, agent.hardware_model, agent.changed_at) == (
        "0.3.0",
        "Kylin V10 (SP1)",
        "ZW-21A",
        heard.now,
    )
    assert await peripherals() == {
        "printer0": ("ok", heard.now, heard.now),
        "idreader0": ("ok", heard.now, heard.now),
    }


async def test_a_new_reading_leaves_the_inventory_rows_alone(heard: Heard) -> None:
    await heard.heartbeat(PRINTER_OK, READER, cpu=10.0)
    first = await peripherals()
    await heard.heartbeat(PRINTER_OK, READER, cpu=55.0)  # the device row is written again

    assert (await Device.get(device_id=DEVICE)).last_health["cpu_percent"] == 55.0  # type: ignore[index]
    assert await peripherals() == first
    assert (await AgentInventory.get(device_id=DEVICE)).changed_at == T0 + timedelta(minutes=1)


async def test_a_fault_restarts_its_status_clock_and_leaves_the_others_alone(heard: Heard) -> None:
    await heard.heartbeat(PRINTER_OK, READER)
    started = heard.now
    await heard.heartbeat(PRINTER_JAM, READER)

    assert await peripherals() == {
        "printer0": ("fault", heard.now, heard.now),
        "idreader0": ("ok", started, started),
    }


async def test_a_firmware_change_is_written_and_keeps_the_status_clock(heard: Heard) -> None:
    await heard.heartbeat(PRINTER_OK)
    started = heard.now
    flashed = PeripheralStatus(
        name="printer0", kind=PeripheralKind.RECEIPT_PRINTER, state=PeripheralState.OK,
        model="TP-80", firmware="2.2",
    )  # fmt: skip
    await heard.heartbeat(flashed)

    assert await peripherals() == {"printer0": ("ok", started, heard.now)}
    assert (await PeripheralInventory.get(device_id=DEVICE)).firmware == "2.2"


async def test_a_peripheral_unplugged_leaves_the_inventory(heard: Heard) -> None:
    await heard.heartbeat(PRINTER_OK, READER)
    await heard.heartbeat(READER)

    assert set(await peripherals()) == {"idreader0"}


async def test_a_heartbeat_before_any_presence_keeps_an_imported_kind(database_url: str) -> None:
    async with database(database_url):
        await Device.create(device_id=DEVICE, kind="review_pad")
        await registry.save_state(DeviceState(DEVICE, DeviceKind.UNKNOWN, last_seen=T0))
        kept = await Device.get(device_id=DEVICE)
        await registry.save_state(DeviceState(DEVICE, DeviceKind.KIOSK, last_seen=T0))
        told = await Device.get(device_id=DEVICE)

    assert (kept.kind, told.kind) == ("review_pad", "kiosk")


# Rows as termfleet wrote them at 0003_auth: a device heard from, and one never heard from.
SEED_AT_0003 = """
INSERT INTO "device" ("device_id", "kind", "presence", "presence_session", "agent_version",
    "first_seen", "last_seen", "last_health", "serial", "labels", "lifecycle")
VALUES ('kiosk-440117000-01', 'kiosk', 'online', 1, '0.2.0', '2026-01-02 03:04:05+00:00',
    '2026-01-02 04:00:00+00:00', '{"seq": 4, "agent_version": "0.2.0", "peripherals": [
        {"name": "printer0", "kind": "receipt_printer", "state": "fault", "reason": "jam"},
        {"name": "camera0", "kind": "camera"}]}', '', '{"floor": "2"}', 'registered'),
    ('pad-never-heard', 'review_pad', 'unknown', 0, '', '2026-01-02 03:04:05+00:00', NULL, NULL,
    '', '{}', 'registered');
"""


@pytest.mark.empty_database
async def test_devices_stored_before_the_inventory_get_their_rows_on_upgrade(
    database_url: str,
) -> None:
    async with connect(database_url) as ctx:
        await migrator.upgrade(client(ctx), "0003_auth")
        await client(ctx).execute_script(SEED_AT_0003)
    async with database(database_url):
        rows = await PeripheralInventory.filter(device_id=DEVICE).order_by("name")
        agents = await AgentInventory.all().values_list("device_id", "agent_version")
        labels = await DeviceLabel.all().values_list("device_id", "key", "value")

    assert [(r.name, r.kind, r.status, r.reason) for r in rows] == [
        ("camera0", "camera", "unknown", ""),
        ("printer0", "receipt_printer", "fault", "jam"),
    ]
    assert rows[0].status_since == datetime(2026, 1, 2, 4, 0, tzinfo=UTC)
    assert agents == [(DEVICE, "0.2.0")]
    assert labels == [(DEVICE, "floor", "2")]


async def test_a_fault_reported_over_mqtt_is_found_by_the_fault_filter(
    broker: BrokerSettings, database_url: str, device_prefix: str
) -> None:
    """The whole path: broker, ingest, inventory rows, the indexed filter, the detail view."""
    kiosk = f"{device_prefix}-kiosk"
    beat = Heartbeat(session=3, seq=1, full=True, agent_version="0.3.0",
                     peripherals=(PRINTER_JAM, READER))  # fmt: skip
    online = Presence(state=PresenceState.ONLINE, session=3, kind=DeviceKind.KIOSK)
    async with running_control_plane(broker, database_url) as cp:
        address = mqtt.BrokerAddress(broker.host, broker.port)
        async with mqtt.connect(address, mqtt.SessionOptions(client_id=kiosk)) as conn:
            await conn.publish(
                mqtt.Outgoing(wire.uplink(kiosk, Channel.PRESENCE), encode(online), qos=1)
            )
            await conn.publish(
                mqtt.Outgoing(wire.uplink(kiosk, Channel.HEALTH), encode(beat), qos=1)
            )

        async def found() -> list[str]:
            body = await cp.get_json("/api/v1/devices?fault=receipt_printer")
            return [d["device_id"] for d in body["items"]]

        assert await cp.wait_for(found) == [kiosk]
        assert (await cp.get_json("/api/v1/devices?fault=id_card_reader"))["items"] == []
        detail = await cp.get_json(f"/api/v1/devices/{kiosk}")

    assert [(p["name"], p["status"]) for p in detail["peripherals"]] == [
        ("idreader0", "ok"),
        ("printer0", "fault"),
    ]
    assert detail["agent"]["agent_version"] == "0.3.0"
