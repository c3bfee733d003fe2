"""The compose broker's config in a real Mosquitto: dynamic security on both listeners, TLS on one.

Only the container paths and the ports are swapped for local ones; every other line runs as is.
The TLS files are made by the project's own CA tooling (`provisioning.ca`, what `termfleet
provision ca init` runs in the stack's secrets-init).
"""

from __future__ import annotations

import contextlib
import getpass
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from control_plane.services.broker import dynsec_plugin, mosquitto_binary
from control_plane.services.processes import ManagedProcess, free_port
from edge.protocol import Channel, topics
from provisioning import ca, dynsec
from provisioning.broker_file import write_dynsec_file
from tests.support.compose import (
    BROKER_CONFIG,
    COMPOSE_FILE,
    SHARED_BROKER_CONF_DIR,
    broker_setting,
    load_yaml,
    run,
)
from tests.support.mqtt_probe import NOT_AUTHORIZED, Probe, allowed

DEVICE_ID = "kiosk-compose-01"
PASSWORD = "compose-test-" + "x" * 20
CERTS_IN_CONTAINER = "/mosquitto/certs/"
MESSAGE_WAIT_S = 5.0


@dataclass(frozen=True)
class Broker:
    plain_port: int
    tls_port: int
    certs: Path
    """Where ca.pem, server.pem and server.key are, as /mosquitto/certs/ is in the container."""


WAIT_PORT_PROBE = "unexpected eof while reading"


@contextlib.contextmanager
def compose_broker(tmp_path: Path, allowed_errors: tuple[str, ...] = ()) -> Iterator[Broker]:
    """The compose main config plus the shared include dir, in a real Mosquitto.

    Its login file holds termfleet's own logins and one terminal's, ``DEVICE_ID``, all with
    ``PASSWORD``. Its log may show no error but those containing one of ``allowed_errors``.
    """
    certs = tmp_path / "certs"
    ca.init_ca(certs, common_name="compose test CA", server_names=["localhost", "broker"])
    dynsec_file = tmp_path / "dynsec" / "dynamic-security.json"
    write_dynsec_file(
        dynsec_file,
        [
            *dynsec.service_clients(lambda _name: PASSWORD),
            dynsec.device_client(DEVICE_ID, PASSWORD),
        ],
        [*dynsec.SERVICE_ROLES, dynsec.device_role(DEVICE_ID)],
    )
    broker = Broker(free_port(), free_port(), certs)
    swaps = {
        r"^listener 1883$": f"listener {broker.plain_port} 127.0.0.1",
        r"^listener 8883$": f"listener {broker.tls_port} 127.0.0.1",
        r"^certfile .*$": f"certfile {certs / 'server.pem'}",
        r"^keyfile .*$": f"keyfile {certs / 'server.key'}",
        r"^persistence_location .*$": f"persistence_location {tmp_path}/",
        r"^include_dir .*$": f"include_dir {SHARED_BROKER_CONF_DIR}",
        r"^plugin .*$": f"plugin {dynsec_plugin()}",
        r"^plugin_opt_config_file .*$": f"plugin_opt_config_file {dynsec_file}",
    }
    text = BROKER_CONFIG.read_text()
    for pattern, replacement in swaps.items():
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"{BROKER_CONFIG.name} should have exactly one line matching {pattern}"
    # The container runs as the mosquitto user; here, as whoever runs the tests.
    config = tmp_path / "mosquitto.conf"
    config.write_text(f"{text}\nuser {getpass.getuser()}\n")

    process = ManagedProcess(
        name="mosquitto", argv=[mosquitto_binary(), "-c", str(config)], log_path=tmp_path / "log"
    ).start()
    try:
        process.wait_port("127.0.0.1", broker.plain_port)
        process.wait_port("127.0.0.1", broker.tls_port)
        yield broker
    finally:
        process.stop()
    errors = [line for line in process.log_path.read_text().splitlines() if "Error" in line]
    # wait_port's own probe of the TLS port connects and leaves without a handshake, which the
    # broker may log (or not, as the timing falls) as an unexpected end of the TLS stream.
    allowed_errors = (*allowed_errors, WAIT_PORT_PROBE)
    assert [e for e in errors if not any(allowed in e for allowed in allowed_errors)] == []


def publish_as_terminal(port: int, *tls: str) -> int:
    """`mosquitto_pub` as the terminal, QoS 1 over MQTT 5; its exit code."""
    argv = ["mosquitto_pub", "-h", "localhost", "-p", str(port), *tls, "-V", "mqttv5"]
    argv += ["-u", DEVICE_ID, "-P", PASSWORD, "-i", DEVICE_ID, "-q", "1"]
    argv += ["-t", topics.uplink(DEVICE_ID, Channel.HEALTH), "-m", "{}"]
    return run(argv).returncode


def test_the_plain_listener_refuses_anonymous_clients_and_confines_a_terminal(
    tmp_path: Path,
) -> None:
    with compose_broker(tmp_path) as broker:
        anonymous = Probe(broker.plain_port, None, None, "anonymous")
        terminal = Probe(broker.plain_port, DEVICE_ID, PASSWORD, DEVICE_ID)
        try:
            assert anonymous.connect() == NOT_AUTHORIZED
            assert terminal.connect() == 0
            assert allowed(terminal.publish(topics.uplink(DEVICE_ID, Channel.HEALTH)))
            assert not allowed(terminal.publish(topics.uplink("kiosk-other", Channel.HEALTH)))
        finally:
            anonymous.close()
            terminal.close()


def test_the_tls_listener_takes_a_terminal_to_the_share_group(tmp_path: Path) -> None:
    """A terminal over TLS reaches a control plane subscribed through the ingest's share group.

    Plain MQTT and a client that trusts another CA are refused on the TLS port.
    """
    other_ca = tmp_path / "other-ca"
    ca.init_ca(other_ca, common_name="another CA", server_names=["localhost"])
    # What the broker may say of the refusals: MQTT bytes where a TLS record belongs (or the
    # client gone first), a client that does not trust its certificate.
    refusals = ("wrong version number", "unexpected eof", "alert unknown ca")
    with compose_broker(tmp_path / "broker", refusals) as broker:
        ingest = Probe(broker.plain_port, dynsec.CONTROL_PLANE_USERNAME, PASSWORD, "cp-test")
        try:
            assert ingest.connect() == 0
            health = topics.uplink_filter(Channel.HEALTH)
            assert allowed(ingest.subscribe(topics.shared(topics.INGEST_SHARE_GROUP, health)))
            cafile = str(broker.certs / "ca.pem")
            assert publish_as_terminal(broker.tls_port, "--cafile", cafile) == 0
            message = ingest.messages.get(timeout=MESSAGE_WAIT_S)
            assert message.topic == topics.uplink(DEVICE_ID, Channel.HEALTH)

            assert publish_as_terminal(broker.tls_port) != 0, "plain MQTT on the TLS port"
            wrong = str(other_ca / "ca.pem")
            assert publish_as_terminal(broker.tls_port, "--cafile", wrong) != 0, "another CA"
            assert ingest.received() == [], "nothing else got through"
        finally:
            ingest.close()


def healthcheck_line(broker: Broker, plain_port: int, tls_port: int) -> str:
    """The broker service's healthcheck as the shell runs it, pointed at local ports."""
    test = load_yaml(COMPOSE_FILE)["services"]["broker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    line = str(test[1]).replace("$$", "$")
    assert line.count("-p 1883 ") == 1
    assert line.count("-p 8883 ") == 1
    assert f"--cafile {CERTS_IN_CONTAINER}ca.pem" in line
    line = line.replace("-p 1883 ", f"-p {plain_port} ").replace("-p 8883 ", f"-p {tls_port} ")
    return line.replace(CERTS_IN_CONTAINER, f"{broker.certs}/")


def test_the_broker_healthcheck_needs_both_listeners(tmp_path: Path) -> None:
    """Up only when both listeners answer MQTT, the TLS one with the certificate clients check."""
    with compose_broker(tmp_path) as broker:
        ports = broker.plain_port, broker.tls_port
        up = run(["sh", "-c", healthcheck_line(broker, *ports)])
        assert up.returncode == 0, up.stdout + up.stderr
        # The TLS check against a plain listener: the handshake fails.
        no_tls = run(["sh", "-c", healthcheck_line(broker, ports[0], ports[0])])
        assert no_tls.returncode != 0
        nothing = run(["sh", "-c", healthcheck_line(broker, ports[0], free_port())])
        assert nothing.returncode != 0
    down = run(["sh", "-c", healthcheck_line(broker, *ports)])
    assert down.returncode != 0
    assert broker_setting("listener") == ["1883", "8883"]
