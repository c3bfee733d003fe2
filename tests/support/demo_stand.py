"""`termfleet demo` as a test runs it, and the situations a dashboard needs arranged on it.

Everything is arranged through the demo's own means, never by faking a metric: the REST API
through the `termfleet` CLI (a site's hours, a window, a rollout, a config layer) and the broker's
admin login (a terminal's login disabled, which kicks it as a revocation does, so its last will
marks it offline while the rest of the district keeps running).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from control_plane.services.processes import free_port
from edge.mqtt import BrokerAddress
from provisioning import dynsec
from provisioning.broker_admin import open_admin
from provisioning.credentials import broker_password, load_secret

STARTED_MARK = "Press Ctrl-C"
OPEN_SITE = "440117000"
"""The district hall, made open around the clock: its offline terminals are unexpected."""
CLOSED_SITE = "440117001001"
"""A village station, closed by a holiday from yesterday to tomorrow: offline is expected."""
STOPPED_AT_OPEN_SITE = "kiosk-440117000-03"
STOPPED_AT_CLOSED_SITE = "station-440117001001-01"
PADLESS_WINDOW = "99"
"""A window added to the open hall with no review pad bound to it."""
ROLLOUT_ID = "dashboards-pending"
"""A rollout to the stopped station PC: unfinished while the station stays offline."""
CONFIG_LAYER = "dashboards-brightness"
ENROLLED_SERIAL = "dashboards-0001"


@dataclass
class DemoStand:
    """A running `termfleet demo` on free ports in ``workdir``; a context manager."""

    workdir: Path
    heartbeat_interval_s: float = 2.0
    http_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)
    output: str = ""
    _process: subprocess.Popen[str] | None = None

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def prometheus(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def token(self) -> str:
        return (self.workdir / "api-token").read_text().strip()

    def __enter__(self) -> Self:
        argv = [
            sys.executable, "-m", "control_plane.cli", "demo",
            "--workdir", str(self.workdir),
            "--http-port", str(self.http_port),
            "--mqtt-port", str(self.mqtt_port),
            "--prometheus-port", str(self.prometheus_port),
            "--heartbeat-interval", str(self.heartbeat_interval_s),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            argv,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        assert self._process.stderr is not None
        lines = []
        for line in self._process.stderr:
            lines.append(line)
            if STARTED_MARK in line:
                break
        self.output = "".join(lines)
        if STARTED_MARK not in self.output:
            self.__exit__(None, None, None)
            raise AssertionError(f"the demo did not start:\n{self.output}")
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)
        self._process.communicate(timeout=60)
        self._process = None

    def cli(self, *args: str) -> str:
        """A `termfleet` command against the demo's API as its admin token; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "control_plane.cli", *args, "--server", self.server],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            env={**os.environ, "TERMFLEET_TOKEN": self.token},
        )
        if done.returncode != 0:
            raise AssertionError(f"termfleet {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def disable_logins(self, *device_ids: str) -> None:
        """Disable the terminals' broker logins: the broker kicks them and refuses them after."""
        secret = load_secret(self.workdir / "secret")
        admin = BrokerAddress("127.0.0.1", self.mqtt_port).with_credentials(
            dynsec.ADMIN_USERNAME, broker_password(secret, dynsec.ADMIN_USERNAME)
        )

        async def disable() -> None:
            async with open_admin(admin) as broker:
                await broker.run([{"command": "disableClient", "username": d} for d in device_ids])

        asyncio.run(disable())

    def enroll_one_more(self, kind: str = "kiosk") -> None:
        """Enroll a new terminal with a claim code, as the demo tells a technician to."""
        made = json.loads(
            self.cli("provision", "claims", "create", "--site", OPEN_SITE, "--kind", kind, "--json")
        )
        config = self.workdir / "terminals" / ENROLLED_SERIAL / "agent.toml"
        argv = [
            sys.executable, "-m", "control_plane.cli", "agent", "enroll",
            "--claim", made["link"], "--kind", kind, "--serial", ENROLLED_SERIAL,
            "--config", str(config), "--state-dir", str(config.parent / "state"),
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"agent enroll failed: {done.stderr}")

    def sample_rollout_version(self) -> int:
        found = re.search(r"guide cards version (\d+)", self.output)
        assert found, self.output
        return int(found.group(1))

    def arrange(self) -> None:
        """Every situation the dashboards show, on top of the district's own traffic.

        A terminal unexpectedly offline at an open site (and a window there without a pad),
        one offline as expected at a closed site, an unfinished rollout, a config layer, one
        more kiosk enrolled with a claim code.
        Reviews, bad reviews with their work orders, usage and peripheral faults come from the
        simulated district itself.
        """
        today = datetime.now(UTC).date()
        days = f"{today - timedelta(days=1)}..{today + timedelta(days=1)}"
        self.cli("sites", "set", OPEN_SITE, "--hours", "24/7")
        self.cli("sites", "set", CLOSED_SITE, "--holiday", f"{days}=closed")
        self.cli("windows", "set", OPEN_SITE, PADLESS_WINDOW, "--name", "dashboards test")
        self.disable_logins(STOPPED_AT_OPEN_SITE, STOPPED_AT_CLOSED_SITE)
        other = 2 if self.sample_rollout_version() == 1 else 1
        self.cli(
            "rollout", "create", "--package", f"guide-cards:{other}",
            "--device", STOPPED_AT_CLOSED_SITE, "--id", ROLLOUT_ID,
        )  # fmt: skip
        self.enroll_one_more()
        self.cli("config", "layers", "set", CONFIG_LAYER, "display.brightness_pct=70", "--global")
