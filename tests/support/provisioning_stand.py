"""A secured broker and a control plane holding the provisioning secret, as real processes.

The broker starts from a login file written from the database (as ``termfleet provision
broker-file`` does), anonymous access off; the control plane runs ``server run --secret-file``
and so answers claims and reconciles the broker. Terminals enroll with ``termfleet agent
enroll`` and run as ``python -m edge.agent``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from control_plane.cli import cli
from control_plane.db import database
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import ManagedProcess, free_port
from edge.content.signing import new_signing_key, public_key_text
from edge.mqtt import BrokerAddress
from edge.protocol import CLAIM_USERNAME
from provisioning import dynsec
from provisioning.broker_file import write_dynsec_file
from provisioning.credentials import broker_password, create_secret, load_secret
from provisioning.device_actions import desired_state
from provisioning.settings import provisioning_settings
from tests.support.fleet_run import eventually, ingest_connected, termfleet
from tests.support.mqtt_probe import Probe

SITE, WINDOW = "s-town", "3"
INVENTORY = {
    "jurisdiction": [
        {"code": "44", "name": "省", "level": "province", "parent": None},
        {"code": "4401", "name": "市", "level": "city", "parent": "44"},
        {"code": "440117", "name": "区", "level": "district", "parent": "4401"},
        {"code": "440117001", "name": "镇", "level": "town", "parent": "440117"},
    ],
    "sites": [
        {"code": SITE, "name": "town hall", "level": "town", "node": "440117001", "hours": "24/7"}
    ],
    "windows": [{"site": SITE, "number": WINDOW}],
}


@dataclass
class ProvisioningStand:
    workdir: Path
    database_url: str
    secret_file: Path = field(init=False)
    content_key_file: Path = field(init=False)
    """The public key the server checks uploads with and hands to enrolling terminals."""
    broker_settings: BrokerSettings = field(init=False)
    http_port: int = field(default_factory=free_port)
    broker: ManagedProcess | None = None
    server: ManagedProcess | None = None
    agents: list[ManagedProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.secret_file = self.workdir / "secret"
        create_secret(self.secret_file)
        self.content_key_file = self.workdir / "content-signing.pub"
        self.content_key_file.write_text(public_key_text(new_signing_key().verify_key) + "\n")
        self.broker_settings = BrokerSettings(
            self.workdir / "broker", free_port(), dynsec_file=self.workdir / "dynsec.json"
        )
        asyncio.run(self._prepare_database())

    async def _prepare_database(self) -> None:
        async with database(self.database_url):
            await import_inventory(read_json(json.dumps(INVENTORY), "inventory.json"))

    @property
    def mqtt_url(self) -> str:
        return self.broker_settings.url

    def password(self, username: str, generation: int = 1) -> str:
        return broker_password(load_secret(self.secret_file), username, generation)

    def write_broker_file(self) -> None:
        settings = provisioning_settings(self.secret_file, self.broker_address())
        desired = asyncio.run(self._desired(settings))
        assert self.broker_settings.dynsec_file is not None
        write_dynsec_file(self.broker_settings.dynsec_file, desired.clients, desired.roles)

    async def _desired(self, settings: Any) -> Any:  # noqa: ANN401 - the Desired of reconcile
        async with database(self.database_url):
            return await desired_state(settings)

    def broker_address(self) -> BrokerAddress:
        return BrokerAddress.from_url(self.mqtt_url)

    def start_broker(self) -> None:
        self.broker = start_broker(self.broker_settings)

    def start_server(self) -> None:
        argv = termfleet(
            "server", "run",
            "--database-url", self.database_url,
            "--mqtt-url", self.mqtt_url,
            "--http-port", str(self.http_port),
            "--client-id", "cp-provisioning",
            "--secret-file", str(self.secret_file),
            "--broker-file", str(self.broker_settings.dynsec_file),
            "--content-key", str(self.content_key_file),
        )  # fmt: skip
        self.server = ManagedProcess(
            "control-plane", argv, self.workdir / "cp.log"
        ).start_and_wait_port("127.0.0.1", self.http_port)
        eventually(self.ingest_connected, 20, "ingest connected with its own login")

    def ingest_connected(self) -> bool:
        return ingest_connected(self.http_port)

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def termfleet(self, *args: str) -> Result:
        """A ``termfleet`` command in this process, with the stand's database and secret."""
        env = {
            "TERMFLEET_DATABASE_URL": self.database_url,
            "TERMFLEET_SECRET_FILE": str(self.secret_file),
            "TERMFLEET_MQTT_URL": self.mqtt_url,
            "TERMFLEET_PUBLIC_BROKER_URL": self.mqtt_url,
            "TERMFLEET_CLAIM_PASSWORD": self.password(CLAIM_USERNAME),
        }
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    def claim_link(self, *extra: str) -> str:
        done = self.termfleet("provision", "claims", "create", "--site", SITE, "--json", *extra)
        assert done.exit_code == 0, done.output
        return str(json.loads(done.stdout)["link"])

    def enroll(self, claim: str, serial: str, kind: str = "kiosk", *extra: str) -> Result:
        config = self.config_path(serial)
        return self.termfleet(
            "agent", "enroll",
            "--claim", claim,
            "--kind", kind,
            "--serial", serial,
            "--config", str(config),
            "--state-dir", str(config.parent / "state"),
            "--timeout", "10",
            "--json",
            *extra,
        )  # fmt: skip

    def config_path(self, serial: str) -> Path:
        return self.workdir / "terminals" / serial / "agent.toml"

    def run_agent(self, serial: str, *, peripherals: str = "none") -> ManagedProcess:
        config = self.config_path(serial)
        config.write_text(f'peripherals = "{peripherals}"\n' + config.read_text())
        argv = [sys.executable, "-m", "edge.agent", "--config", str(self.config_path(serial))]
        agent = ManagedProcess(f"agent-{serial}", argv, self.workdir / f"agent-{serial}.log")
        self.agents.append(agent.start())
        return agent

    def device_probe(self, device_id: str, password: str) -> Probe:
        return Probe(self.broker_settings.port, device_id, password, device_id)

    def claim_probe(self) -> Probe:
        return Probe(
            self.broker_settings.port, CLAIM_USERNAME, self.password(CLAIM_USERNAME), "claim-x"
        )

    def control_plane_probe(self) -> Probe:
        username = dynsec.CONTROL_PLANE_USERNAME
        return Probe(self.broker_settings.port, username, self.password(username), "cp-probe")

    def admin_password(self) -> str:
        return self.password(dynsec.ADMIN_USERNAME)

    def close(self) -> None:
        for process in (*self.agents, self.server, self.broker):
            if process is not None:
                process.stop()


def agent_password(config: Path) -> str:
    return (config.parent / "broker-password").read_text().strip()
