"""The broker fixture really runs the project's Mosquitto config."""

from __future__ import annotations

import subprocess

from control_plane.services.broker import BrokerSettings


def test_broker_accepts_mqtt5_publish_and_uses_project_config(broker: BrokerSettings) -> None:
    result = subprocess.run(
        ["mosquitto_pub", "-V", "mqttv5", "-p", str(broker.port), "-t", "probe/x", "-m", "1"],
        capture_output=True,
        check=False,
        timeout=10,
    )
    assert result.returncode == 0, result.stderr
    assert "include_dir" in (broker.workdir / "mosquitto.conf").read_text()
    assert (broker.workdir / "conf.d" / "termfleet.conf").exists()
