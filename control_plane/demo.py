"""``termfleet demo``: broker, control plane, Prometheus and a simulated district.

They run as child processes of one supervisor, which stops them all by pid on Ctrl-C, SIGTERM or
a closed terminal (SIGHUP). The broker runs as in production: dynamic security, anonymous access
off. The district's terminals are recorded as enrolled (``provisioning.demo_logins``) and the
simulator logs each in with the password derived from the demo's secret. The control plane
and the simulated terminals trust the demo's content key, and the demo rolls out a sample
package of guide cards to the district's kiosks (``control_plane.demo_content``).
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import ManagedProcess, ProcessError
from control_plane.services.prometheus import (
    PrometheusSettings,
    prometheus_binary,
    start_prometheus,
)
from edge.atomic_file import write_atomic
from edge.simulator.district import terminals

from .demo_content import (
    DemoApi,
    DemoContentError,
    SampleContent,
    SampleRollout,
    roll_out_sample,
    rollout_hint,
)
from .demo_history import DEMO_BACKFILL_DAYS, DemoHistory

ONLINE_TIMEOUT_S = 60.0
ADMIN_NAME = "demo-admin"
"""The demo's admin API token's name; each demo replaces the previous one's."""
ADMIN_FILE = "api-token"
SECRET_FILE = "secret"  # noqa: S105 - a file name
"""The demo's provisioning secret: every broker password is derived from it."""
SAMPLE_DIR = "sample-content"
DATABASE_FILE = "termfleet.sqlite3"
"""The content key pair and the sample packages (not ``content``: the control plane's store)."""
_POLL_S = 0.5
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DemoStopped(Exception):  # noqa: N818 - a request, not an error
    """A stop signal arrived while the demo was still starting."""


@dataclass(frozen=True)
class DemoSettings:
    workdir: Path
    district: str = "conghua"
    mqtt_port: int = 18830
    http_port: int = 8080
    prometheus_port: int = 9090
    with_prometheus: bool = True
    heartbeat_interval_s: float = 10.0
    backfill_days: int = DEMO_BACKFILL_DAYS
    """Past days the simulator backfills on the first start (docs/demo-month.md); 0: none."""


def _termfleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "control_plane.cli", *args]


class Demo:
    """Starts the parts in order, waits for the district to come online, stops in reverse."""

    def __init__(self, settings: DemoSettings, say: Callable[[str], None]) -> None:
        self.settings = settings
        self._say = say
        self._children: list[ManagedProcess] = []
        self._stopping = False
        self.prometheus_url: str | None = None
        self._token = ""
        self.sample = SampleContent(settings.workdir / SAMPLE_DIR)
        self._with_content = False
        self.rollout: SampleRollout | None = None
        self.rollout_problem = ""
        self.history = DemoHistory(
            settings.workdir / DATABASE_FILE, settings.district, settings.backfill_days
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    @property
    def broker(self) -> BrokerSettings:
        workdir = self.settings.workdir / "broker"
        return BrokerSettings(
            workdir, self.settings.mqtt_port, dynsec_file=workdir / "dynamic-security.json"
        )

    @property
    def secret_file(self) -> Path:
        return self.settings.workdir / SECRET_FILE

    def start(self) -> None:
        for start_part in (
            self._prepare_logins,
            self._prepare_content,
            self._start_broker,
            self._create_token,
            self._start_control_plane,
            self._start_rollout,
            self._start_prometheus,
            self._start_simulator,
        ):
            if self._stopping:
                raise DemoStopped
            start_part()

    def _start_broker(self) -> None:
        self._say(f"starting Mosquitto on {self.broker.url}, anonymous access off\n")
        self._children.append(start_broker(self.broker))

    @property
    def database_url(self) -> str:
        return f"sqlite://{self.settings.workdir / DATABASE_FILE}"

    def _prepare_logins(self) -> None:
        """The secret, the district (tree, sites, windows, terminals) enrolled, the broker's file.

        Written before the broker starts, which reads its logins from the file.
        """
        s = self.settings
        self._say(f"enrolling the {s.district} district's terminals, each with its own login\n")
        argv = [
            sys.executable, "-m", "provisioning.demo_logins",
            "--district", s.district,
            "--secret-file", str(self.secret_file),
            "--broker-file", str(self.broker.dynsec_file),
            "--database-url", self.database_url,
        ]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            msg = f"enrolling the {s.district} district failed: {done.stderr.strip()}"
            raise ProcessError(msg)

    @property
    def token_file(self) -> Path:
        return self.settings.workdir / ADMIN_FILE

    def _create_token(self) -> None:
        """An admin token for the demo's API calls and the commands it suggests.

        It replaces the previous demo's, and goes to a file only its user reads rather than to
        the screen, so that logs and screenshots do not carry it.
        """
        argv = _termfleet(
            "tokens", "create", "--name", ADMIN_NAME, "--role", "admin", "--replace", "--json",
            "--database-url", self.database_url,
        )  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            msg = f"creating the demo's API token failed: {done.stderr.strip()}"
            raise ProcessError(msg)
        self._token = json.loads(done.stdout)["token"]
        write_atomic(self.token_file, (self._token + "\n").encode())
        self._say(f"an admin API token is in {self.token_file}\n")

    def _prepare_content(self) -> None:
        """The content key pair and the sample's packages, made once per work directory."""
        try:
            self.sample.prepare()
        except DemoContentError as exc:
            self.rollout_problem = str(exc)
            self._say(f"WARNING: {exc}; the demo runs without content\n")
            return
        self._with_content = True

    def _content_keys(self) -> list[str]:
        if not self._with_content:
            return []
        return ["--content-key", str(self.sample.public_key_file)]

    def _start_rollout(self) -> None:
        """Upload the sample and roll it out to the kiosks, which need not be online yet.

        The rollout targets the devices in the database; each terminal finds its retained
        content notice when it connects, so the rollout runs while the district comes online.
        """
        if not self._with_content:
            return
        try:
            self.rollout = roll_out_sample(
                self.sample, DemoApi(self.api_url, self._token), self.settings.district
            )
        except DemoContentError as exc:
            self.rollout_problem = f"the sample rollout was not started: {exc}"
            self._say(f"WARNING: {self.rollout_problem}\n")
            return
        self._say(self.rollout.headline() + "\n")

    def _start_control_plane(self) -> None:
        s = self.settings
        self._say(f"starting the control plane on {self.api_url}\n")
        argv = _termfleet(
            "server", "run",
            "--database-url", self.database_url,
            "--mqtt-url", self.broker.url,
            "--http-port", str(s.http_port),
            "--secret-file", str(self.secret_file),
            "--public-broker-url", self.broker.url,
            "--broker-file", str(self.broker.dynsec_file),
            *self._content_keys(),
        )  # fmt: skip
        process = ManagedProcess("control-plane", argv, s.workdir / "control-plane.log")
        self._children.append(process.start_and_wait_port("127.0.0.1", s.http_port))

    def _start_prometheus(self) -> None:
        s = self.settings
        if not s.with_prometheus:
            return
        binary = prometheus_binary()
        if binary is None:
            self._say("Prometheus is not installed; skipping it (./dev demo installs it)\n")
            return
        prom = PrometheusSettings(
            s.workdir / "prometheus", s.prometheus_port, (f"127.0.0.1:{s.http_port}",)
        )
        self._say(f"starting Prometheus on {prom.url}\n")
        self._children.append(start_prometheus(prom, binary))
        self.prometheus_url = prom.url

    def _backfill_options(self) -> list[str]:
        options = self.history.simulator_options()
        if options:
            self._say(
                f"backfilling the district's last {self.history.days} days"
                " (progress in simulator.log)\n"
            )
        return options

    def _start_simulator(self) -> None:
        s = self.settings
        self._say(f"starting the simulated {s.district} district\n")
        argv = _termfleet(
            "simulate",
            "--district", s.district,
            "--mqtt-url", self.broker.url,
            "--heartbeat-interval", str(s.heartbeat_interval_s),
            "--state-dir", str(s.workdir / "simulator"),
            "--secret-file", str(self.secret_file),
            *self._content_keys(),
            *self._backfill_options(),
        )  # fmt: skip
        self._children.append(
            ManagedProcess("simulator", argv, s.workdir / "simulator.log").start()
        )

    def wait_online(self, expected: int, timeout_s: float = ONLINE_TIMEOUT_S) -> int:
        """Poll the API until ``expected`` devices are online; returns how many were."""
        deadline = time.monotonic() + timeout_s
        online = 0
        while time.monotonic() < deadline and not self._stopping:
            self.check_children()
            online = self.online_count()
            self._say(f"\r{online}/{expected} terminals online")
            if online >= expected:
                break
            time.sleep(_POLL_S)
        self._say("\n")
        return online

    def online_count(self) -> int:
        """Devices online now, or 0 while the API does not answer."""
        base = f"{self.api_url}/api/v1/devices?presence=online&limit=500"
        url, count = base, 0
        try:
            while url:
                request = urllib.request.Request(  # noqa: S310 - our localhost
                    url, headers={"Authorization": f"Bearer {self._token}"}
                )
                with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 - as above
                    body = json.load(resp)
                count += len(body["items"])
                cursor = body.get("next_cursor")
                url = f"{base}&cursor={cursor}" if cursor else ""
        except (urllib.error.URLError, TimeoutError, ValueError, KeyError):
            return 0
        return count

    def check_children(self) -> None:
        for child in self._children:
            if not child.alive():
                msg = f"{child.name} exited with {child.returncode()}: {child.log_tail()}"
                raise ProcessError(msg)

    def stop(self) -> None:
        self._stopping = True
        for child in reversed(self._children):
            code = child.stop()
            self._say(f"stopped {child.name} (pid {child.pid}, exit {code})\n")
        self._children.clear()

    def request_stop(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def run_until_stopped(self) -> None:
        while not self._stopping:
            self.check_children()
            time.sleep(_POLL_S)

    def summary(self, online: int, expected: int) -> str:
        lines = [f"{online}/{expected} terminals online"]
        if online < expected:
            lines.append(
                f"WARNING: not every terminal came online within {ONLINE_TIMEOUT_S:.0f}s; "
                f"see {self.settings.workdir}/*.log"
            )
        lines += [
            f"  API         {self.api_url}/api/v1/devices",
            f"  metrics     {self.api_url}/metrics",
        ]
        if self.prometheus_url:
            lines.append(f"  Prometheus  {self.prometheus_url}")
        token = f"$(cat {shlex.quote(str(self.token_file))})"
        lines += [
            f"  token       {self.token_file} (admin): Authorization: Bearer {token}",
            f"  CLI         TERMFLEET_TOKEN={token} termfleet devices ls --server {self.api_url}",
            f"  logs        {self.settings.workdir}",
            *self.rollout_hint(token),
            *self.history.hint(token, self.api_url),
            *self.enroll_hint(),
            "Press Ctrl-C to stop everything.",
        ]
        return "\n".join(lines) + "\n"

    def rollout_hint(self, token: str) -> list[str]:
        """The sample rollout, how to watch it, and what to try next."""
        if self.rollout is None:
            return [f"  rollout     none: {self.rollout_problem}"] if self.rollout_problem else []
        cli = f"TERMFLEET_TOKEN={token} termfleet rollout"
        return rollout_hint(self.rollout, cli, f"--server {self.api_url}", self.settings.district)

    def enroll_hint(self) -> list[str]:
        """How to enroll one more terminal against the demo, as a technician would."""
        site = terminals(self.settings.district)[0].site_code
        config = self.settings.workdir / "terminals" / "demo-0001" / "agent.toml"
        claim = [
            "termfleet", "provision", "claims", "create", "--site", site,
            "--secret-file", str(self.secret_file), "--public-broker-url", self.broker.url,
            "--database-url", self.database_url,
        ]  # fmt: skip
        enroll = [
            "--kind", "kiosk", "--serial", "demo-0001", "--config", str(config),
            "--state-dir", str(config.parent / "state"),
        ]  # fmt: skip
        return [
            "  enroll one more terminal: make a claim code, enroll with its link, run the agent",
            f"    {shlex.join(claim)}",
            # The link, quoted: it holds & and ?.
            f"    termfleet agent enroll --claim 'LINK' {shlex.join(enroll)}",
            f"    {shlex.join(['termfleet', 'agent', 'run', '--config', str(config)])}",
        ]


def run_demo(settings: DemoSettings, say: Callable[[str], None]) -> None:
    demo = Demo(settings, say)
    for signum in _STOP_SIGNALS:
        signal.signal(signum, demo.request_stop)
    expected = len(terminals(settings.district))
    try:
        demo.start()
        online = demo.wait_online(expected)
        say(demo.summary(online, expected))
        demo.run_until_stopped()
    except DemoStopped:
        say("stopping before the demo finished starting\n")
    finally:
        demo.stop()
