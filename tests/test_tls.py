"""MQTT over TLS, against a real Mosquitto with a TLS listener.

An agent configured with mqtts:// and the broker's CA file connects; one trusting another CA is
refused. Against a broker that requires client certificates, an agent presenting the one its
config names connects as the certificate's CN; none, or one from another CA, is refused; and a
certificate the agent cannot use stops it at start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from control_plane.services.broker import (
    BrokerSettings,
    TlsFiles,
    mosquitto_binary,
    start_broker,
    write_config,
)
from control_plane.services.processes import ManagedProcess, free_port
from edge import mqtt
from edge.agent.runner import Agent, AgentIdentity, AgentTiming
from edge.agent.sessions import MemorySessionCounter
from edge.agent.startup import StartError, build_agent
from edge.agent.telemetry import SystemHealth
from edge.protocol import Channel, DeviceKind, Presence, PresenceState, decode
from edge.protocol import topics as wire
from provisioning.ca import ClientFiles, init_ca, issue_client_certificate


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


# --- client certificates ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CertBroker:
    """A broker requiring certificates from the CA in ``ca_dir``, and the agent's own."""

    settings: BrokerSettings
    ca_dir: Path
    device_id: str
    device: ClientFiles
    watcher: ClientFiles
    """CN ``watcher``: the ACL lets it read the device's uplink and nothing else."""

    @property
    def ca_file(self) -> Path:
        return self.ca_dir / "ca.pem"

    def address(self, client: ClientFiles | None) -> mqtt.BrokerAddress:
        cert, key = (str(client.cert), str(client.key)) if client else (None, None)
        return mqtt.BrokerAddress(
            self.settings.host,
            self.settings.port,
            tls=True,
            ca_file=str(self.ca_file),
            cert_file=cert,
            key_file=key,
        )


@pytest.fixture
def cert_broker(tmp_path: Path, device_prefix: str) -> Iterator[CertBroker]:
    ca_dir = tmp_path / "ca"
    ca = init_ca(ca_dir, common_name="test CA", server_names=["127.0.0.1", "localhost"])
    device_id = f"{device_prefix}-kiosk"
    device = issue_client_certificate(ca_dir, device_id, tmp_path / "certs")
    watcher = issue_client_certificate(ca_dir, "watcher", tmp_path / "certs")
    # With use_identity_as_username the CN is the username: only the device's CN may publish on
    # its uplink, so the watcher hearing the agent proves the broker took the CN as its username.
    acl = tmp_path / "acl"
    acl.write_text(
        f"user {device_id}\ntopic write {wire.device_uplink_filter(device_id)}\n"
        f"topic read {wire.device_downlink_filter(device_id)}\n\n"
        f"user watcher\ntopic read {wire.device_uplink_filter(device_id)}\n"
    )
    tls = TlsFiles(certfile=ca.server_cert, keyfile=ca.server_key)
    settings = BrokerSettings(tmp_path / "broker", free_port(), tls=tls)
    config = write_config(settings)
    # Listener options apply to the listener declared last, which is write_config's only one.
    with config.open("a") as stream:
        stream.write(f"cafile {ca.ca_cert}\nrequire_certificate true\n")
        stream.write(f"use_identity_as_username true\nacl_file {acl}\n")
    argv = [mosquitto_binary(), "-c", str(config)]
    broker = ManagedProcess("mosquitto", argv, settings.workdir / "mosquitto.log")
    broker.start_and_wait_port(settings.host, settings.port)
    yield CertBroker(settings, ca_dir, device_id, device, watcher)
    broker.stop()


def agent_config(folder: Path, broker: CertBroker, cert: Path, key: Path) -> Path:
    """An agent.toml for the device on ``broker`` presenting ``cert`` and ``key``."""
    path = folder / "agent.toml"
    path.write_text(
        f'device_id = "{broker.device_id}"\nkind = "kiosk"\nstate_dir = "state"\n\n'
        f'[broker]\nurl = "{broker.settings.url}"\nca_file = "{broker.ca_file}"\n'
        f'cert_file = "{cert}"\nkey_file = "{key}"\n'
    )
    return path


async def test_the_agent_presents_its_certificate_and_the_broker_names_it_by_its_cn(
    cert_broker: CertBroker, tmp_path: Path
) -> None:
    device_id, device = cert_broker.device_id, cert_broker.device
    agent = build_agent(agent_config(tmp_path, cert_broker, device.cert, device.key))
    watch = mqtt.SessionOptions(client_id=f"{device_id}-watch")
    try:
        async with mqtt.connect(cert_broker.address(cert_broker.watcher), watch) as watcher:
            await watcher.subscribe(wire.uplink(device_id, Channel.PRESENCE), qos=1)
            stop = asyncio.Event()
            run = asyncio.create_task(agent.run(stop))
            message = await asyncio.wait_for(anext(aiter(watcher.messages())), 15)
            stop.set()
            await asyncio.wait_for(run, 10)
    finally:
        agent.close()
    presence = decode(Channel.PRESENCE, message.payload)
    assert isinstance(presence, Presence)
    assert presence.state is PresenceState.ONLINE


async def test_no_certificate_or_one_from_another_ca_is_refused(
    cert_broker: CertBroker, tmp_path: Path
) -> None:
    init_ca(tmp_path / "stranger", common_name="stranger CA", server_names=["127.0.0.1"])
    stranger = issue_client_certificate(tmp_path / "stranger", cert_broker.device_id, tmp_path)
    # With TLS 1.3 the broker refuses the client's certificate after the handshake, and the
    # client waits out its CONNACK timeout (the keepalive, at most 10 s): keep it short.
    options = mqtt.SessionOptions(client_id=cert_broker.device_id, keepalive_s=4)
    for client in (None, stranger):
        with pytest.raises(mqtt.MqttError):
            async with mqtt.connect(cert_broker.address(client), options):
                pass
    # The same broker takes the device's own certificate, so the refusals were the certificates'.
    async with mqtt.connect(cert_broker.address(cert_broker.device), options):
        pass


def encrypted_copy(key: Path, folder: Path) -> Path:
    private = serialization.load_pem_private_key(key.read_bytes(), password=None)
    copy = folder / "encrypted.key"
    copy.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
    )
    copy.chmod(0o600)
    return copy


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        ("mismatched", r"the key .*watcher\.key does not match the certificate .*-kiosk\.pem"),
        ("not_pem", r"cannot load the client certificate .*junk\.pem and its key .*are both PEM"),
        ("encrypted", r"the key .*encrypted\.key is encrypted; give one without a passphrase"),
    ],
)
def test_a_certificate_the_agent_cannot_use_stops_it_at_start(
    cert_broker: CertBroker, tmp_path: Path, spoil: str, message: str
) -> None:
    cert, key = cert_broker.device.cert, cert_broker.device.key
    if spoil == "mismatched":
        key = cert_broker.watcher.key
    elif spoil == "not_pem":
        cert = tmp_path / "junk.pem"
        cert.write_text("not a certificate\n")
    else:
        key = encrypted_copy(key, tmp_path)

    with pytest.raises(StartError, match=message):
        build_agent(agent_config(tmp_path, cert_broker, cert, key))


async def test_a_certificate_spoilt_while_the_agent_runs_is_a_connection_error(
    cert_broker: CertBroker,
) -> None:
    # The agent retries on MqttError: a renewal caught half done must not kill it.
    spoilt = dataclasses.replace(
        cert_broker.address(cert_broker.device), key_file=str(cert_broker.watcher.key)
    )
    with pytest.raises(mqtt.MqttError, match=r"watcher\.key does not match the certificate"):
        async with mqtt.connect(spoilt, mqtt.SessionOptions(client_id=cert_broker.device_id)):
            pass


def test_the_address_keeps_its_client_certificate_with_other_credentials() -> None:
    address = dataclasses.replace(
        mqtt.BrokerAddress.from_url("mqtts://broker.example:8883"),
        ca_file="ca.pem",
        cert_file="kiosk.pem",
        key_file="kiosk.key",
    )

    renamed = address.with_credentials("kiosk-01", "pw")

    assert (renamed.ca_file, renamed.cert_file, renamed.key_file) == (
        "ca.pem",
        "kiosk.pem",
        "kiosk.key",
    )
    assert (renamed.username, renamed.password) == ("kiosk-01", "pw")
    assert str(renamed) == "mqtts://broker.example:8883"


@pytest.mark.parametrize(
    ("url", "cert", "key", "message"),
    [
        ("mqtts://b:8883", "c.pem", None, "needs both its certificate file and its key file"),
        ("mqtts://b:8883", None, "c.key", "needs both its certificate file and its key file"),
        ("mqtt://b:1883", "c.pem", "c.key", r"needs TLS \(mqtts://\), not mqtt://b:1883"),
    ],
)
def test_an_address_refuses_half_a_certificate_or_one_without_tls(
    url: str, cert: str | None, key: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(mqtt.BrokerAddress.from_url(url), cert_file=cert, key_file=key)
