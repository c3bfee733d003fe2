"""`termfleet demo` end to end, as a user runs it.

The simulated Conghua district comes online in /metrics, the API, `termfleet devices ls` and a
real Prometheus within a minute, each terminal with its own broker login on a broker that refuses
anonymous clients; the demo's sample rollout of guide cards to the kiosks makes progress; Ctrl-C
stops every child.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from control_plane.services.processes import free_port
from edge.mqtt import BrokerAddress
from edge.simulator.district import terminals
from provisioning import dynsec
from provisioning.broker_admin import open_admin
from provisioning.credentials import broker_password, load_secret
from provisioning.demo_logins import terminal_password
from tests.support.mqtt_probe import NOT_AUTHORIZED, Probe
from tests.test_ingest import metric_value

pytestmark = pytest.mark.slow

ONLINE_WITHIN_S = 60.0
ROLLOUT_PROGRESS_S = 60.0


def prometheus_query(base: str, expr: str) -> list[dict]:  # type: ignore[type-arg]
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - localhost
        return json.load(resp)["data"]["result"]  # type: ignore[no-any-return]


async def broker_logins(port: int, secret: bytes) -> dict[str, list[str]]:
    """The broker's logins and their roles, asked as the demo's admin login."""
    admin_login = BrokerAddress("127.0.0.1", port).with_credentials(
        dynsec.ADMIN_USERNAME, broker_password(secret, dynsec.ADMIN_USERNAME)
    )
    async with open_admin(admin_login) as admin:
        data = await admin.data(dynsec.list_clients())
    return {c["username"]: [r["rolename"] for r in c["roles"]] for c in data["clients"]}


def connack(port: int, username: str | None, password: str | None, client_id: str) -> int:
    probe = Probe(port, username, password, client_id)
    try:
        return probe.connect()
    finally:
        probe.close()


def check_terminal_logins(port: int, secret: bytes) -> None:
    """Anonymous clients are refused; every terminal has a login and a role of its own."""
    assert connack(port, None, None, "anonymous-probe") == NOT_AUTHORIZED
    device_ids = [t.device_id for t in terminals("conghua")]
    logins = asyncio.run(broker_logins(port, secret))
    for device_id in device_ids:
        assert logins.get(device_id) == [dynsec.device_role_name(device_id)], device_id
    # The password of its first enrollment and no other: a later generation's is refused...
    kiosk = device_ids[0]
    assert connack(port, kiosk, broker_password(secret, kiosk, 2), kiosk) == NOT_AUTHORIZED
    # ...and the one the simulator derives is accepted (this takes the terminal's session over,
    # so it comes last).
    assert connack(port, kiosk, terminal_password(secret, kiosk), kiosk) == 0


def check_sample_rollout(server: str, token: str, text: str) -> None:
    """The demo rolls guide cards out to the 15 kiosks, and some install within a minute."""
    found = re.search(r"rolling out guide cards version 1 to 15 kiosks, .*: (\S+)\n", text)
    assert found, text
    rollout_id = found.group(1)
    assert f"termfleet rollout show {rollout_id} --watch --server {server}" in text
    request = urllib.request.Request(  # noqa: S310 - localhost
        f"{server}/api/v1/rollouts/{rollout_id}", headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + ROLLOUT_PROGRESS_S
    view: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - localhost
            view = json.load(resp)
        if view["steps"]["succeeded"] > 0:
            break
        time.sleep(0.5)
    assert view["steps"]["succeeded"] > 0, view
    assert view["device_count"] == 15
    assert view["install_policy"] == "when_idle"


@pytest.mark.timeout(180)
def test_demo_brings_the_district_online_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    http, mqtt, prom = free_port(), free_port(), free_port()
    expected = len(terminals("conghua"))
    started = time.monotonic()
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "control_plane.cli",
            "demo",
            "--workdir",
            str(tmp_path / "demo"),
            "--http-port",
            str(http),
            "--mqtt-port",
            str(mqtt),
            "--prometheus-port",
            str(prom),
            "--heartbeat-interval",
            "2",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert demo.stderr is not None
    output = []
    try:
        for line in demo.stderr:
            output.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(output)
        assert f"{expected}/{expected} terminals online" in text, text
        assert time.monotonic() - started < ONLINE_WITHIN_S
        assert f"http://127.0.0.1:{prom}" in text

        server = f"http://127.0.0.1:{http}"
        token_file = tmp_path / "demo" / "api-token"
        assert f"TERMFLEET_TOKEN=$(cat {token_file}) termfleet devices ls" in text
        assert token_file.stat().st_mode & 0o077 == 0, "the token file is for its owner only"
        token = token_file.read_text().strip()
        assert token not in text, "the demo prints where the token is, not the token"
        listed = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "control_plane.cli",
                    "devices",
                    "ls",
                    "--server",
                    server,
                    "--json",
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
                env={**os.environ, "TERMFLEET_TOKEN": token},
            ).stdout
        )
        assert len(listed) == expected
        assert {d["presence"] for d in listed} == {"online"}
        with urllib.request.urlopen(server + "/metrics", timeout=5) as resp:  # noqa: S310
            metrics = resp.read().decode()
        assert metric_value(metrics, "termfleet_devices", kind="kiosk", presence="online") == 15

        deadline = time.monotonic() + 30
        result: list[dict] = []  # type: ignore[type-arg]
        while time.monotonic() < deadline:
            result = prometheus_query(
                f"http://127.0.0.1:{prom}", 'sum(termfleet_devices{presence="online"})'
            )
            if result and float(result[0]["value"][1]) == expected:
                break
            time.sleep(1)
        assert result, "Prometheus never scraped the control plane"
        assert float(result[0]["value"][1]) == expected
        check_sample_rollout(server, token, text)
        assert "termfleet provision claims create --site" in text
        assert "termfleet agent enroll --claim 'LINK'" in text
        check_terminal_logins(mqtt, load_secret(tmp_path / "demo" / "secret"))
    finally:
        demo.send_signal(signal.SIGINT)
        _, rest = demo.communicate(timeout=60)
    assert demo.returncode == 0, rest
    stopped = re.findall(r"stopped (\S+) \(pid (\d+), exit", rest)
    assert {name for name, _ in stopped} == {
        "simulator",
        "prometheus",
        "control-plane",
        "mosquitto",
    }
    for _, pid in stopped:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)
