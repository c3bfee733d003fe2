"""The broker fixture really runs Mosquitto with the project's settings, and they take effect."""

from __future__ import annotations

import subprocess
from pathlib import Path

from control_plane.services.broker import BrokerSettings

MAX_PACKET_SIZE = 270_000  # control_plane/services/mosquitto.d/termfleet.conf


def pub(broker: BrokerSettings, topic: str, payload_file: Path) -> subprocess.CompletedProcess[str]:
    argv = ["mosquitto_pub", "-V", "mqttv5", "-p", str(broker.port), "-q", "1", "-t", topic]
    return subprocess.run(
        [*argv, "-f", str(payload_file)], capture_output=True, text=True, check=False, timeout=10
    )


def sub_one(broker: BrokerSettings, topic: str) -> subprocess.Popen[str]:
    argv = ["mosquitto_sub", "-V", "mqttv5", "-p", str(broker.port), "-q", "1", "-t", topic]
    return subprocess.Popen([*argv, "-C", "1", "-W", "3", "-N"], stdout=subprocess.PIPE, text=True)


def test_the_project_config_is_what_runs(broker: BrokerSettings) -> None:
    main = (broker.workdir / "mosquitto.conf").read_text()
    assert f"listener {broker.port} {broker.host}" in main
    assert f"include_dir {broker.workdir / 'conf.d'}" in main
    assert (
        f"max_packet_size {MAX_PACKET_SIZE}"
        in (broker.workdir / "conf.d" / "termfleet.conf").read_text()
    )


def test_max_packet_size_is_enforced(
    broker: BrokerSettings, tmp_path: Path, device_prefix: str
) -> None:
    # Delivered below the limit and refused above it: proof the shared settings file is loaded.
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(b"s" * 200_000)
    large.write_bytes(b"l" * (MAX_PACKET_SIZE + 1_000))
    topic = f"probe/{device_prefix}"

    listener = sub_one(broker, topic)
    assert pub(broker, topic, small).returncode == 0
    out, _ = listener.communicate(timeout=10)
    assert len(out) == 200_000

    # The broker drops the oversized publish (and its connection); the small one after it is the
    # first message the listener gets, which also proves the listener was there in time.
    listener = sub_one(broker, topic)
    pub(broker, topic, large)
    assert pub(broker, topic, small).returncode == 0
    out, _ = listener.communicate(timeout=10)
    assert out == "s" * 200_000, "a packet over max_packet_size must not be delivered"
