"""``termfleet demo``: broker, control plane, Prometheus and a simulated district.

They run as child processes of one supervisor, which stops them all by pid on Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import sys
import time
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
from edge.simulator.district import terminals

ONLINE_TIMEOUT_S = 60.0
_POLL_S = 0.5


@dataclass(frozen=True)
class DemoSettings:
    workdir: Path
    district: str = "conghua"
    mqtt_port: int = 18830
    http_port: int = 8080
    prometheus_port: int = 9090
    with_prometheus: bool = True
    heartbeat_interval_s: float = 10.0


def _termfleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "control_plane.cli", *args]


class Demo:
    """Starts the parts in order, waits for the district to come online, stops in reverse."""

    def __init__(self, settings: DemoSettings, say: Callable[[str], None]) -> None:
        self.settings = settings
        self._say = say
        self._children: list[ManagedProcess] = []
        self._stopping = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.http_port}"

    def start(self) -> None:
        s = self.settings
        broker = BrokerSettings(s.workdir / "broker", s.mqtt_port)
        self._say(f"starting Mosquitto on {broker.url}\n")
        self._children.append(start_broker(broker))
        self._say(f"starting the control plane on {self.api_url}\n")
        control_plane = ManagedProcess(
            "control-plane",
            _termfleet(
                "server",
                "run",
                "--database-url",
                f"sqlite://{s.workdir / 'termfleet.sqlite3'}",
                "--mqtt-url",
                broker.url,
                "--http-port",
                str(s.http_port),
            ),
            s.workdir / "control-plane.log",
        ).start()
        self._children.append(control_plane)
        control_plane.wait_port("127.0.0.1", s.http_port)
        binary = prometheus_binary() if s.with_prometheus else None
        if binary:
            prom = PrometheusSettings(
                s.workdir / "prometheus", s.prometheus_port, (f"127.0.0.1:{s.http_port}",)
            )
            self._say(f"starting Prometheus on {prom.url}\n")
            self._children.append(start_prometheus(prom, binary))
        elif s.with_prometheus:
            self._say("Prometheus is not installed; skipping it (./dev demo installs it)\n")
        self._say(f"starting the simulated {s.district} district\n")
        self._children.append(
            ManagedProcess(
                "simulator",
                _termfleet(
                    "simulate",
                    "--district",
                    s.district,
                    "--mqtt-url",
                    broker.url,
                    "--heartbeat-interval",
                    str(s.heartbeat_interval_s),
                ),
                s.workdir / "simulator.log",
            ).start()
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
        url = f"{self.api_url}/api/v1/devices?presence=online&limit=500"
        count = 0
        while url:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - our own localhost URL
                body = json.load(resp)
            count += len(body["items"])
            cursor = body.get("next_cursor")
            url = (
                f"{self.api_url}/api/v1/devices?presence=online&limit=500&cursor={cursor}"
                if cursor
                else ""
            )
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


def run_demo(settings: DemoSettings, say: Callable[[str], None]) -> None:
    demo = Demo(settings, say)
    signal.signal(signal.SIGINT, demo.request_stop)
    signal.signal(signal.SIGTERM, demo.request_stop)
    expected = len(terminals(settings.district))
    try:
        demo.start()
        online = demo.wait_online(expected)
        say(
            f"{online}/{expected} terminals online\n"
            f"  API         {demo.api_url}/api/v1/devices\n"
            f"  metrics     {demo.api_url}/metrics\n"
            + (
                f"  Prometheus  http://127.0.0.1:{settings.prometheus_port}\n"
                if settings.with_prometheus and prometheus_binary()
                else ""
            )
            + f"  CLI         termfleet devices ls --server {demo.api_url}\n"
            f"  logs        {settings.workdir}\n"
            "Press Ctrl-C to stop everything.\n"
        )
        demo.run_until_stopped()
    finally:
        demo.stop()
