"""The broker fixture really runs Mosquitto with the project's settings, and they take effect."""

from __future__ import annotations

import asyncio
from pathlib import Path

from control_plane.services.broker import BrokerSettings
from edge import mqtt

MAX_PACKET_SIZE = 270_000  # control_plane/services/mosquitto.d/termfleet.conf


def test_the_project_config_is_what_runs(broker: BrokerSettings) -> None:
    main = (broker.workdir / "mosquitto.conf").read_text()
    shared = (broker.workdir / "conf.d" / "termfleet.conf").read_text()
    assert f"listener {broker.port} {broker.host}" in main
    assert f"include_dir {broker.workdir / 'conf.d'}" in main
    assert f"max_packet_size {MAX_PACKET_SIZE}" in shared


async def mosquitto_pub(broker: BrokerSettings, topic: str, payload_file: Path) -> None:
    argv = ["mosquitto_pub", "-V", "mqttv5", "-p", str(broker.port), "-q", "1", "-t", topic]
    process = await asyncio.create_subprocess_exec(*argv, "-f", str(payload_file))
    await asyncio.wait_for(process.wait(), 10)


async def test_max_packet_size_is_enforced(
    broker: BrokerSettings, tmp_path: Path, device_prefix: str
) -> None:
    # Delivered below the limit and dropped above it: proof the shared settings file is loaded.
    # The oversized publish goes first; the small one after it must be the first to arrive.
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(b"s" * 200_000)
    large.write_bytes(b"l" * (MAX_PACKET_SIZE + 1_000))
    topic = f"probe/{device_prefix}"
    address = mqtt.BrokerAddress(broker.host, broker.port)
    async with mqtt.connect(address, mqtt.SessionOptions(client_id=device_prefix)) as conn:
        await conn.subscribe(topic, qos=1)
        await mosquitto_pub(broker, topic, large)
        await mosquitto_pub(broker, topic, small)
        first = await asyncio.wait_for(anext(aiter(conn.messages())), 10)
    assert first.payload == b"s" * 200_000, "a packet over max_packet_size must not be delivered"
