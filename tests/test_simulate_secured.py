"""`termfleet simulate --secret-file` against a broker with anonymous access off.

The broker is prepared as docker compose's ``broker-init`` prepares it (``python -m
provisioning.demo_logins``): the district's terminals recorded as enrolled with generation 1,
the broker's login file written from the database. A simulated terminal with the secret comes
online with its own login; one without a login, or with a stale password, stays out.
"""

from __future__ import annotations

import asyncio
import queue
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from control_plane.cli import cli
from control_plane.db import database
from control_plane.db.models import AuditEntry, Department, Device
from control_plane.lifecycle import Lifecycle
from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import ManagedProcess, free_port
from edge import mqtt
from edge.agent.runner import AgentTiming
from edge.protocol import Channel, Presence, PresenceState, decode, topics
from edge.simulator import fleet
from edge.simulator.district import terminals
from edge.simulator.items import departments
from provisioning import demo_logins, dynsec
from provisioning.credentials import broker_password, create_secret, load_secret
from tests.support.fleet_run import termfleet
from tests.support.mqtt_probe import NOT_AUTHORIZED, Probe

pytestmark = pytest.mark.slow

DISTRICT = "conghua"
ONLINE_WITHIN_S = 15.0
REFUSED_FOR_S = 3.0
"""How long a terminal without a valid login is watched not coming online."""


@dataclass
class SecuredBroker:
    settings: BrokerSettings
    secret_file: Path
    database_url: str

    @property
    def secret(self) -> bytes:
        return load_secret(self.secret_file)

    def watcher(self, client_id: str) -> Probe:
        """The control plane's login: it reads every terminal's presence."""
        username = dynsec.CONTROL_PLANE_USERNAME
        password = broker_password(self.secret, username)
        probe = Probe(self.settings.port, username, password, client_id)
        assert probe.connect() == 0
        return probe


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    workdir = tmp_path_factory.mktemp("secured")
    settings = BrokerSettings(
        workdir / "broker", free_port(), dynsec_file=workdir / "broker" / "dynsec.json"
    )
    database_url = f"sqlite://{workdir / 'termfleet.sqlite3'}"
    prepared = subprocess.run(
        [
            sys.executable, "-m", "provisioning.demo_logins",
            "--district", DISTRICT,
            "--secret-file", str(workdir / "secret"),
            "--broker-file", str(settings.dynsec_file),
            "--database-url", database_url,
        ],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert prepared.returncode == 0, prepared.stderr
    assert f"{len(terminals(DISTRICT))} terminals enrolled now" in prepared.stderr
    broker = start_broker(settings)
    yield SecuredBroker(settings, workdir / "secret", database_url)
    broker.stop()


def comes_online(watcher: Probe, device_id: str, timeout_s: float) -> bool:
    """Whether the terminal's presence (retained or new) says online within the time."""
    assert watcher.subscribe(topics.uplink(device_id, Channel.PRESENCE)) < NOT_AUTHORIZED
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = watcher.messages.get(timeout=left)
        except queue.Empty:
            break
        presence = decode(Channel.PRESENCE, message.payload)
        assert isinstance(presence, Presence)
        if presence.state is PresenceState.ONLINE:
            return True
    return False


def test_anonymous_clients_are_refused(secured: SecuredBroker) -> None:
    probe = Probe(secured.settings.port, None, None, "anonymous")
    try:
        assert probe.connect() == NOT_AUTHORIZED
    finally:
        probe.close()


def test_a_simulated_terminal_with_the_secret_comes_online_as_itself(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    device_id = terminals(DISTRICT)[0].device_id
    argv = termfleet(
        "simulate",
        "--district", DISTRICT,
        "--devices", "1",
        "--activity-rate", "0",
        "--mqtt-url", secured.settings.url,
        "--secret-file", str(secured.secret_file),
        "--state-dir", str(tmp_path / "state"),
    )  # fmt: skip
    simulator = ManagedProcess("simulator", argv, tmp_path / "simulator.log").start()
    watcher = secured.watcher("watch-online")
    try:
        online = comes_online(watcher, device_id, ONLINE_WITHIN_S)
    finally:
        watcher.close()
        simulator.stop()
    assert online, simulator.log_tail()
    assert "each with its own login" in simulator.log_path.read_text()


@pytest.mark.parametrize("generation", [None, 2], ids=["no login", "a stale generation"])
async def test_a_terminal_without_its_password_stays_offline(
    secured: SecuredBroker, tmp_path: Path, generation: int | None
) -> None:
    terminal = terminals(DISTRICT)[1]
    secret = secured.secret
    password_of = None if generation is None else (lambda d: broker_password(secret, d, generation))
    address = mqtt.BrokerAddress(secured.settings.host, secured.settings.port)
    agents = fleet.build_agents(
        [terminal], address, AgentTiming(), 1, tmp_path, password_of=password_of
    )
    watcher = secured.watcher(f"watch-refused-{generation}")
    stop = asyncio.Event()
    try:
        running = asyncio.create_task(fleet.run_fleet(agents, stop))
        online = await asyncio.to_thread(comes_online, watcher, terminal.device_id, REFUSED_FOR_S)
        stop.set()
        await asyncio.wait_for(running, 10)
    finally:
        stop.set()
        watcher.close()
        fleet.close_agents(agents)
    assert not online


def test_simulate_refuses_an_unusable_secret_file(tmp_path: Path) -> None:
    missing = CliRunner().invoke(
        cli, ["simulate", "--devices", "1", "--secret-file", str(tmp_path / "none")]
    )
    assert missing.exit_code == 1
    assert "cannot read the secret file" in missing.output
    too_open = tmp_path / "secret"
    create_secret(too_open)
    too_open.chmod(0o644)
    opened = CliRunner().invoke(cli, ["simulate", "--devices", "1", "--secret-file", str(too_open)])
    assert opened.exit_code == 1
    assert "chmod 600" in opened.output


async def test_only_terminals_that_never_had_a_login_are_enrolled(database_url: str) -> None:
    district = terminals(DISTRICT)
    fresh, reenrolled, retired = (t.device_id for t in district[:3])
    now = datetime.now(UTC)
    async with database(database_url):
        await Device.create(device_id=fresh, kind="kiosk")
        await Device.create(device_id=reenrolled, lifecycle="enrolled", broker_generation=2)
        await Device.create(device_id=retired, lifecycle="retired")
        ids = [fresh, reenrolled, retired]
        assert await demo_logins.enroll_simulated(ids, now=now) == 1
        assert await demo_logins.enroll_simulated(ids, now=now) == 0, "a second run moves none"
        rows = {d.device_id: d for d in await Device.filter(device_id__in=ids)}
        entries = await AuditEntry.filter(action="device.enroll").values_list("target_id", "note")
    assert (rows[fresh].lifecycle, rows[fresh].broker_generation) == (Lifecycle.IN_SERVICE, 1)
    assert rows[fresh].enrolled_at is not None
    assert (rows[reenrolled].lifecycle, rows[reenrolled].broker_generation) == ("enrolled", 2)
    assert (rows[retired].lifecycle, rows[retired].broker_generation) == ("retired", 0)
    assert entries == [(fresh, demo_logins.DEMO_NOTE)]


async def test_preparing_registers_the_simulated_items_departments(
    secured: SecuredBroker,
) -> None:
    """So that statistics and the transactions metric name them instead of counting "other"."""
    async with database(secured.database_url):
        rows = await Department.all().values_list("code", "name")
    assert sorted(rows) == sorted((d["code"], d["name"]) for d in departments())
    assert ("rs", "人社 human resources and social security") in rows


def test_preparing_refuses_bad_input_with_a_clear_error(tmp_path: Path) -> None:
    database_url = f"sqlite://{tmp_path / 'termfleet.sqlite3'}"

    def prepare(*args: str) -> tuple[int, str]:
        base = ["--secret-file", str(tmp_path / "secret"), "--database-url", database_url]
        done = CliRunner().invoke(demo_logins.main, [*base, *args])
        return done.exit_code, done.output

    code, said = prepare("--district", "atlantis", "--broker-file", str(tmp_path / "b.json"))
    assert code == 1
    assert "unknown district 'atlantis'" in said
    (tmp_path / "a-file").write_text("")
    code, said = prepare("--broker-file", str(tmp_path / "a-file" / "dynsec.json"))
    assert code == 1
    assert "cannot write the broker's file" in said
    (tmp_path / "secret").chmod(0o640)
    code, said = prepare("--broker-file", str(tmp_path / "b.json"))
    assert code == 1
    assert "chmod 600" in said
    assert not (tmp_path / "b.json").exists()
