"""A broker, a control plane and a simulated fleet as real processes, for reliability tests."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import ManagedProcess, free_port
from edge.agent.outbox import OUTBOX_FILE, Outbox


def termfleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "control_plane.cli", *args]


def eventually(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Wait for ``check``; returns the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            msg = f"{what}: not reached within {timeout_s}s"
            raise AssertionError(msg)
        time.sleep(0.1)
    return time.monotonic() - started


@dataclass
class FleetRun:
    """Everything a reliability test starts, stopped by ``close``."""

    workdir: Path
    database_url: str
    devices: int = 3
    broker_settings: BrokerSettings = field(init=False)
    http_port: int = field(init=False, default_factory=free_port)
    broker: ManagedProcess | None = None
    control_plane: ManagedProcess | None = None
    simulator: ManagedProcess | None = None

    def __post_init__(self) -> None:
        self.broker_settings = BrokerSettings(self.workdir / "broker", free_port())

    @property
    def state_dir(self) -> Path:
        return self.workdir / "terminals"

    def start_broker(self) -> None:
        self.broker = start_broker(self.broker_settings)

    def start_control_plane(self) -> None:
        argv = termfleet(
            "server", "run",
            "--database-url", self.database_url,
            "--mqtt-url", self.broker_settings.url,
            "--http-port", str(self.http_port),
            "--client-id", "cp-reliability",
        )  # fmt: skip
        self.control_plane = ManagedProcess(
            "control-plane", argv, self.workdir / "cp.log"
        ).start_and_wait_port("127.0.0.1", self.http_port)
        eventually(self.ingest_connected, 20, "ingest connected")

    def start_simulator(self, activity_rate: float) -> None:
        argv = termfleet(
            "simulate",
            "--devices", str(self.devices),
            "--activity-rate", str(activity_rate),
            "--heartbeat-interval", "1",
            "--state-dir", str(self.state_dir),
            "--mqtt-url", self.broker_settings.url,
        )  # fmt: skip
        self.simulator = ManagedProcess("simulator", argv, self.workdir / "sim.log").start()

    def ingest_connected(self) -> bool:
        url = f"http://127.0.0.1:{self.http_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(json.load(resp)["mqtt_connected"])
        except OSError:
            return False

    def outboxes(self) -> Iterator[tuple[str, Outbox]]:
        for directory in sorted(self.state_dir.iterdir()):
            outbox = Outbox(directory / OUTBOX_FILE)
            try:
                yield directory.name, outbox
            finally:
                outbox.close()

    def backlog(self) -> int:
        return sum(outbox.backlog() for _, outbox in self.outboxes())

    def allocated(self) -> dict[str, range]:
        return {device: outbox.allocated() for device, outbox in self.outboxes()}

    def close(self) -> None:
        for process in (self.simulator, self.control_plane, self.broker):
            if process is not None:
                process.stop()
