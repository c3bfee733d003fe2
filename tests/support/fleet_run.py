"""A broker, a control plane and a simulated fleet as real processes, for reliability tests."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from control_plane.db import database
from control_plane.db.models import StoredRecord
from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import ManagedProcess, free_port
from edge.agent.outbox import OUTBOX_FILE, Outbox

ACTIVITY = 600.0
"""Visits per terminal per minute for a stream test: about 50 records a second per terminal."""


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


def ingest_connected(http_port: int) -> bool:
    """Whether the control plane on ``http_port`` says its ingest is connected to the broker."""
    url = f"http://127.0.0.1:{http_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(json.load(resp)["mqtt_connected"])
    except OSError:
        return False


@dataclass
class FleetRun:
    """Everything a reliability test starts, stopped by ``close``."""

    workdir: Path
    database_url: str
    devices: int = 3
    simulator_mqtt_url: str | None = None
    """Where the simulator connects instead of the broker, e.g. a proxy in front of it."""
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
            "--mqtt-url", self.simulator_mqtt_url or self.broker_settings.url,
        )  # fmt: skip
        self.simulator = ManagedProcess("simulator", argv, self.workdir / "sim.log").start()

    def ingest_connected(self) -> bool:
        return ingest_connected(self.http_port)

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


async def stored(database_url: str) -> dict[str, list[int]]:
    async with database(database_url):
        rows = await StoredRecord.all().only("device_id", "seq")
    result: dict[str, list[int]] = {}
    for row in rows:
        result.setdefault(row.device_id, []).append(row.seq)
    return {device: sorted(seqs) for device, seqs in result.items()}


def drain(run: FleetRun) -> float:
    """Stop the activity, let every outbox empty, stop the simulator; returns the drain time."""
    assert run.simulator is not None
    run.simulator.stop()
    run.start_simulator(activity_rate=0)
    took = eventually(lambda: run.backlog() == 0, 120, "every outbox drained")
    run.simulator.stop()
    return took


def assert_exactly_once(run: FleetRun) -> int:
    allocated = run.allocated()
    in_db = asyncio.run(stored(run.database_url))
    assert set(allocated) == set(in_db), "a terminal's records are missing altogether"
    for device, seqs in allocated.items():
        assert in_db[device] == list(seqs), f"{device}: database differs from what was recorded"
    return sum(len(seqs) for seqs in allocated.values())
