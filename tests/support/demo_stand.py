"""`termfleet demo` as a test runs it, and the situations a dashboard needs arranged on it.

Everything is arranged through the demo's own means, never by faking a metric: the REST API
through the `termfleet` CLI (a site's hours, a window, a rollout, a config layer) and the
provisioning CLI on the demo's database and broker (two terminals' logins deleted for
re-enrollment, which kicks them, so the control plane finds them silent and offline while the
rest of the district keeps running).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from control_plane.demo import DATABASE_FILE
from control_plane.services.processes import free_port
from tests.support.sqlite_busy import tried_while_busy

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
SETTLE_S = 90.0
"""How long a terminal may take to reach the state the arrangement needs, on a loaded machine."""


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

    def termfleet(self, *args: str, env: dict[str, str] | None = None) -> str:
        """A `termfleet` command; its stdout. Fails the test with its stderr.

        Tried again while SQLite refuses it beside the demo server's writes (``sqlite_busy``).
        """
        argv = [sys.executable, "-m", "control_plane.cli", *args]
        done = tried_while_busy(
            lambda: subprocess.run(
                argv, capture_output=True, text=True, check=False, timeout=60, env=env
            ),
            lambda done: done.stderr,
        )
        if done.returncode != 0:
            raise AssertionError(f"termfleet {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def cli(self, *args: str) -> str:
        """A `termfleet` command against the demo's API as its admin token; its stdout."""
        return self.termfleet(
            *args, "--server", self.server, env={**os.environ, "TERMFLEET_TOKEN": self.token}
        )

    @property
    def database_url(self) -> str:
        return f"sqlite://{self.workdir / DATABASE_FILE}"

    def device(self, device_id: str) -> dict[str, object]:
        """The device as the API shows it."""
        request = urllib.request.Request(  # noqa: S310 - the demo's own http URL
            f"{self.server}/api/v1/devices/{device_id}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - as above
            shown: dict[str, object] = json.load(answer)
        return shown

    def wait_for(self, device_id: str, field: str, wanted: str) -> None:
        """Poll the API until the device's ``field`` is ``wanted``; fail with what it showed."""
        deadline = time.monotonic() + SETTLE_S
        while (shown := self.device(device_id)).get(field) != wanted:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{device_id}: {field} not {wanted} after {SETTLE_S:.0f} s: {live(shown)}"
                )
            time.sleep(1.0)

    def stop_terminals(self, *device_ids: str) -> None:
        """Take terminals off the broker as an operator would: logins deleted for re-enrollment.

        The broker kicks each at once and refuses it after, and the broker reconcile agrees (a
        disabled login it would enable again, and the terminal would be back within minutes).
        """
        for device_id in device_ids:
            self.provision("reenroll", device_id, "--note", "the dashboards test stops it")

    def provision(self, *args: str) -> str:
        """A `termfleet provision` command on the demo's database and broker; its stdout."""
        return self.termfleet(
            "provision", *args,
            "--mqtt-url", f"mqtt://127.0.0.1:{self.mqtt_port}",
            "--secret-file", str(self.workdir / "secret"),
            "--database-url", self.database_url,
        )  # fmt: skip

    def assert_broker_in_step(self) -> None:
        """Run the broker reconcile the control plane runs at any moment: it must find no drift.

        Drift it would repair (a login disabled behind its back, say) would undo a situation
        some minutes later, at random; this way such an arrangement fails here, every time.
        """
        drift = json.loads(self.provision("reconcile", "--json"))["drift"]
        found = {kind: count for kind, count in drift.items() if count}
        assert not found, f"the broker reconcile would undo the arrangement: {found}"

    def enroll_one_more(self, kind: str = "kiosk") -> None:
        """Enroll a new terminal with a claim code, as the demo tells a technician to."""
        made = json.loads(
            self.cli("provision", "claims", "create", "--site", OPEN_SITE, "--kind", kind, "--json")
        )
        config = self.workdir / "terminals" / ENROLLED_SERIAL / "agent.toml"
        self.termfleet(
            "agent", "enroll",
            "--claim", made["link"], "--kind", kind, "--serial", ENROLLED_SERIAL,
            "--config", str(config), "--state-dir", str(config.parent / "state"),
        )  # fmt: skip

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
        # Stopped before it first connected, a terminal would stay "unknown", never offline: the
        # demo goes on after its wait for the district even when some terminals are late.
        for device in (STOPPED_AT_OPEN_SITE, STOPPED_AT_CLOSED_SITE):
            self.wait_for(device, "presence", "online")
        self.stop_terminals(STOPPED_AT_OPEN_SITE, STOPPED_AT_CLOSED_SITE)
        self.wait_for(STOPPED_AT_OPEN_SITE, "availability", "offline_unexpected")
        self.wait_for(STOPPED_AT_CLOSED_SITE, "availability", "offline_expected")
        other = 2 if self.sample_rollout_version() == 1 else 1
        self.cli(
            "rollout", "create", "--package", f"guide-cards:{other}",
            "--device", STOPPED_AT_CLOSED_SITE, "--id", ROLLOUT_ID,
        )  # fmt: skip
        self.enroll_one_more()
        self.cli("config", "layers", "set", CONFIG_LAYER, "display.brightness_pct=70", "--global")
        self.assert_broker_in_step()


def live(device: dict[str, object]) -> dict[str, object]:
    """What a failure message needs of a device the API showed: its live state, not its health."""
    fields = ("presence", "presence_reason", "availability", "site", "session", "last_seen")
    return {name: device.get(name) for name in fields}
