"""MQTT over TLS, against a real Mosquitto with a TLS listener.

An agent configured with mqtts:// and the broker's CA file connects; one trusting another CA is
refused.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.services.broker import BrokerSettings, TlsFiles, start_broker
from control_plane.services.processes import free_port
from edge import mqtt
from edge.agent.runner import Agent, AgentIdentity, AgentTiming
from edge.agent.sessions import MemorySessionCounter
from edge.agent.telemetry import SystemHealth
from edge.protocol import Channel, DeviceKind, Presence, PresenceState, decode
from edge.protocol import topics as wire


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_ca_and_server_cert(folder: Path, name: str) -> tuple[Path, TlsFiles]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""
    ca_key, ca_cert = folder / f"{name}-ca.key", folder / f"{name}-ca.pem"
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name} test CA", "-keyout", ca_key, "-out", ca_cert)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", key, "-out", csr)  # fmt: skip
    extensions = folder / f"{name}.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-extfile", extensions, "-out", cert)  # fmt: skip
    return ca_cert, TlsFiles(certfile=cert, keyfile=key)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[BrokerSettings, Path, Path]]:
    """A TLS-only broker; yields its settings, its CA and an unrelated CA."""
    ca, files = make_ca_and_server_cert(tmp_path, "broker")
    other_ca, _ = make_ca_and_server_cert(tmp_path, "other")
    settings = BrokerSettings(tmp_path / "broker", free_port(), tls=files)
    process = start_broker(settings)
    yield settings, ca, other_ca
    process.stop()


async def test_agent_connects_over_tls_with_its_ca_file(
    tls_broker: tuple[BrokerSettings, Path, Path], device_prefix: str
) -> None:
    settings, ca, _ = tls_broker
    assert settings.url.startswith("mqtts://")
    address = mqtt.BrokerAddress(settings.host, settings.port, tls=True, ca_file=str(ca))
    device_id = f"{device_prefix}-kiosk"
    watcher_options = mqtt.SessionOptions(client_id=f"{device_prefix}-watch")
    async with mqtt.connect(address, watcher_options) as watcher:
        await watcher.subscribe(wire.uplink(device_id, Channel.PRESENCE), qos=1)
        agent = Agent(
            AgentIdentity(device_id, DeviceKind.KIOSK),
            address,
            SystemHealth(),
            MemorySessionCounter(1),
            timing=AgentTiming(heartbeat_interval_s=60),
        )
        stop = asyncio.Event()
        run = asyncio.create_task(agent.run(stop))
        message = await asyncio.wait_for(anext(aiter(watcher.messages())), 15)
        stop.set()
        await asyncio.wait_for(run, 10)
    presence = decode(Channel.PRESENCE, message.payload)
    assert isinstance(presence, Presence)
    assert presence.state is PresenceState.ONLINE


async def test_a_broker_certificate_from_another_ca_is_refused(
    tls_broker: tuple[BrokerSettings, Path, Path], device_prefix: str
) -> None:
    settings, _, other_ca = tls_broker
    address = mqtt.BrokerAddress(settings.host, settings.port, tls=True, ca_file=str(other_ca))
    with pytest.raises(mqtt.MqttError, match=r"(?i)certificate"):
        async with mqtt.connect(address, mqtt.SessionOptions(client_id=device_prefix)):
            pass
