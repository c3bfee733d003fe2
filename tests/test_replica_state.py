"""Two control-plane replicas on one broker: each keeps the whole fleet, records are split.

Every replica exposes the fleet's gauges from its own copy of the fleet state, so every replica
must read every heartbeat (a replica given every other one would show a printer's fault late or
never); the records go through the share group and are stored once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from control_plane.db import database
from control_plane.db.models import StoredRecord
from control_plane.fleet import FleetState
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.protocol import Channel, DeviceKind, Heartbeat, Presence, PresenceState, encode
from edge.protocol import topics as wire
from edge.protocol.codec import encode_records
from edge.protocol.usage import IdCardRead

HEARTBEATS = 8
RECORDS = 20
WAIT_S = 20.0


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 - the fleet state has no event to wait on
            await asyncio.sleep(0.05)
    assert condition(), what


async def test_every_replica_reads_every_heartbeat_and_each_record_is_stored_once(
    own_broker: tuple[BrokerSettings, object], database_url: str, device_prefix: str
) -> None:
    broker, _ = own_broker
    address = mqtt.BrokerAddress(broker.host, broker.port)
    device = f"{device_prefix}-kiosk"
    async with database(database_url):
        fleets = [FleetState(), FleetState()]
        all_metrics = [ControlPlaneMetrics(fleet) for fleet in fleets]
        ingests = [Ingest(f, m) for f, m in zip(fleets, all_metrics, strict=True)]
        running = [
            asyncio.create_task(ingest.run(address, f"cp-{device_prefix}-{n}", share_group="g"))
            for n, ingest in enumerate(ingests)
        ]
        try:
            await until(lambda: all(i.downlink is not None for i in ingests), "both connected")
            options = mqtt.SessionOptions(client_id=device)
            async with mqtt.connect(address, options) as terminal:
                now = datetime.now(UTC)
                online = Presence(state=PresenceState.ONLINE, session=1, kind=DeviceKind.KIOSK)
                await terminal.publish(
                    mqtt.Outgoing(wire.uplink(device, Channel.PRESENCE), encode(online), qos=1)
                )
                for seq in range(1, HEARTBEATS + 1):
                    beat = Heartbeat(session=1, seq=seq, at=now, cpu_percent=float(seq))
                    topic = wire.uplink(device, Channel.HEALTH)
                    await terminal.publish(mqtt.Outgoing(topic, encode(beat), qos=1))
                for seq in range(1, RECORDS + 1):
                    record = IdCardRead(seq=seq, at=now)
                    topic = wire.uplink(device, Channel.USAGE)
                    await terminal.publish(mqtt.Outgoing(topic, encode_records([record]), qos=1))

                def last_cpu(fleet: FleetState) -> float | None:
                    state = fleet.get(device)
                    return state.health.cpu_percent if state and state.health else None

                await until(
                    lambda: all(last_cpu(f) == float(HEARTBEATS) for f in fleets),
                    "both replicas hold the last heartbeat",
                )

                async def stored() -> int:
                    return await StoredRecord.filter(device_id=device).count()

                async with asyncio.timeout(WAIT_S):
                    while await stored() < RECORDS:  # noqa: ASYNC110 - polls the database
                        await asyncio.sleep(0.05)
            assert await stored() == RECORDS
            rows = await StoredRecord.filter(device_id=device).values_list("seq")
            assert sorted(row[0] for row in rows) == list(range(1, RECORDS + 1))
            # The broker hands each record message to one member of the group.
            per_replica = [
                m.registry.get_sample_value("termfleet_ingest_records_total") or 0.0
                for m in all_metrics
            ]
            assert sum(per_replica) == RECORDS, per_replica
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
