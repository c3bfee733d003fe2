"""One broker, one throwaway PostgreSQL database and two ``termfleet server run`` replicas.

The database is migrated once, before either replica starts (``termfleet db migrate``), and the
replicas are started with ``TERMFLEET_AUTO_MIGRATE=0``, as a deployment of several replicas
would be. Both join the ingest's share group (``edge.protocol.topics.INGEST_SHARE_GROUP``) with
distinct client ids; the second runs ``--no-rollouts``. Each replica's records and CPU are read
from its own ``/metrics`` and its process while it lives, so a killed replica's last sample
still counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench.ingest import temporary_postgres
from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import ManagedProcess, free_port
from monitoring.metrics import INGEST_RECORDS

CONNECTED_TIMEOUT_S = 30.0


@dataclass
class Replica:
    """A ``server run`` process that can be stopped, killed and started again as itself."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    process: ManagedProcess | None = None
    earlier_records: float = 0.0
    earlier_cpu_s: float = 0.0
    """Records and CPU of the lives before this one (a killed replica started again)."""
    records: float = 0.0
    cpu_s: float = 0.0
    """This life's, as of the last ``sample``."""
    kills: list[float] = field(default_factory=list)

    @property
    def total_records(self) -> float:
        return self.earlier_records + self.records

    @property
    def total_cpu_s(self) -> float:
        return self.earlier_cpu_s + self.cpu_s

    def start(self) -> None:
        env = {**os.environ, "TERMFLEET_AUTO_MIGRATE": "0"}
        process = ManagedProcess(self.name, self.argv, self.log_path, env=env)
        self.process = process.start_and_wait_port("127.0.0.1", self.port)
        deadline = time.monotonic() + CONNECTED_TIMEOUT_S
        while not self._ingest_connected():
            if time.monotonic() > deadline:
                msg = f"{self.name}: the ingest did not connect: {process.log_tail()}"
                raise RuntimeError(msg)
            time.sleep(0.1)
        self.sample()

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def sample(self) -> None:
        """Read this life's record counter and CPU time (kept when it dies)."""
        if not self.alive() or self.process is None:
            return
        with contextlib.suppress(OSError, psutil.Error):
            times = psutil.Process(self.process.pid).cpu_times()
            self.cpu_s = times.user + times.system
            self.records = self._records_counter()

    def kill(self) -> None:
        """SIGKILL: no goodbye to the broker, nothing flushed; its session stays."""
        self.sample()
        if self.process is not None:
            self.process.signal(signal.SIGKILL)
            self.process.stop()
        self.kills.append(time.time())
        self._end_life()

    def stop(self) -> None:
        """SIGTERM: the planned stop, which leaves the share group."""
        self.sample()
        if self.process is not None:
            self.process.stop()
        self._end_life()

    def _end_life(self) -> None:
        self.earlier_records += self.records
        self.earlier_cpu_s += self.cpu_s
        self.records = self.cpu_s = 0.0
        self.process = None

    def _get(self, path: str) -> bytes:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
        return body

    def _ingest_connected(self) -> bool:
        try:
            return bool(json.loads(self._get("/healthz"))["mqtt_connected"])
        except (OSError, ValueError, KeyError):
            return False

    def _records_counter(self) -> float:
        text = self._get("/metrics").decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == INGEST_RECORDS.name:
                    return float(sample.value)
        return 0.0


@dataclass(frozen=True)
class Cluster:
    broker: BrokerSettings
    database_url: str
    replicas: list[Replica]

    def sample(self) -> None:
        for replica in self.replicas:
            replica.sample()


def migrate(database_url: str) -> None:
    argv = [sys.executable, "-m", "control_plane.cli", "db", "migrate",
            "--database-url", database_url]  # fmt: skip
    subprocess.run(argv, capture_output=True, check=True, timeout=120)  # noqa: S603


@contextlib.contextmanager
def cluster(
    workdir: Path, postgres_admin_url: str, options: tuple[str, ...] = ()
) -> Iterator[Cluster]:
    """The broker, a migrated database and two running replicas; all gone afterwards.

    ``options`` go to both replicas' ``server run`` besides their own.
    """
    with temporary_postgres(postgres_admin_url) as database_url:
        migrate(database_url)
        broker = BrokerSettings(workdir / "broker", free_port())
        broker_process = start_broker(broker)
        members = [_replica(workdir, n, database_url, broker, options) for n in range(2)]
        try:
            for replica in members:
                replica.start()
            yield Cluster(broker, database_url, members)
        finally:
            for replica in members:
                replica.stop()
            broker_process.stop()


def offers_option(option: str) -> bool:
    """Whether this checkout's ``server run`` has ``option``."""
    argv = [sys.executable, "-m", "control_plane.cli", "server", "run", "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)  # noqa: S603
    return option in done.stdout


def _replica(
    workdir: Path, n: int, database_url: str, broker: BrokerSettings, options: tuple[str, ...]
) -> Replica:
    name = f"replica-{'ab'[n]}"
    port = free_port()
    # Exactly one replica per database drives the rollouts.
    rollouts = "--rollouts" if n == 0 else "--no-rollouts"
    argv = [sys.executable, "-m", "control_plane.cli", "--log-level", "warning", "server", "run",
            "--database-url", database_url, "--mqtt-url", broker.url,
            "--http-port", str(port), "--client-id", f"bench-{name}",
            rollouts, *options]  # fmt: skip
    return Replica(name, argv, port, workdir / f"{name}.log")
