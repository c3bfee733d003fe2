"""The broker topology of ``bench/connections.py``: edge Mosquittos bridged to one core.

One Mosquitto process holds at most about 19,900 connections here (a process may open 20,000
files), so terminals are spread over several *edge* brokers, each started with the project's own
configuration (``control_plane.services.broker``) plus one bridge to a *core* broker, the one the
control plane subscribes to. Each edge bridge carries the whole uplink out (``up/+/+``, so
presence, retained flags and last wills reach the core as the terminals sent them) and the whole
downlink in (``down/+/+``). The control plane stays as it is deployed: one broker URL, one
subscription. The price of the wildcard downlink is that every edge broker receives every
terminal's downlink and drops what none of its clients subscribed to; downlink traffic is small
(acks, commands, notices) beside the uplink, and one bridge line per device (17,000 lines per
bridge) would cost each broker a subscription per terminal at the core instead.
"""

from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from control_plane.services.broker import (
    BrokerSettings,
    mosquitto_binary,
    start_broker,
    write_config,
)
from control_plane.services.processes import ManagedProcess, free_port
from edge.protocol import topics as wire

from .stand import issue_token

BRIDGE_KEEPALIVE_S = 60


@dataclass(frozen=True)
class Topology:
    core: BrokerSettings
    edges: list[BrokerSettings]
    processes: dict[str, ManagedProcess]
    """By name: ``core``, ``edge-0``, ``edge-1``..."""


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit to the hard one; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def bridge_config(name: str, core: BrokerSettings) -> str:
    """The edge broker's bridge to the core (mosquitto.conf(5), "Configuring Bridges")."""
    up = f"{wire.ROOT}/{wire.Direction.UP.value}/+/+"
    return "\n".join(
        [
            f"connection {name}",
            f"address {core.host}:{core.port}",
            "bridge_protocol_version mqttv50",
            f"remote_clientid termfleet-bench-{name}",
            # A persistent bridge session: a core restart does not lose what was queued for it.
            "cleansession false",
            "try_private true",
            "notifications false",
            f"keepalive_interval {BRIDGE_KEEPALIVE_S}",
            f"topic {up} out 1",
            f"topic {wire.all_downlink_filter()} in 1",
            "",
        ]
    )


@contextlib.contextmanager
def topology(root: Path, edges: int) -> Iterator[Topology]:
    """Start the core and ``edges`` edge brokers bridged to it; stop them all on the way out."""
    raise_open_files_limit()
    core = BrokerSettings(root / "core", free_port())
    processes: dict[str, ManagedProcess] = {}
    try:
        processes["core"] = start_broker(core)
        settings = []
        for n in range(edges):
            edge = BrokerSettings(root / f"edge-{n}", free_port())
            config = write_config(edge)
            (edge.workdir / "conf.d" / "bridge.conf").write_text(bridge_config(f"edge-{n}", core))
            process = ManagedProcess(
                name=f"mosquitto-edge-{n}",
                argv=[mosquitto_binary(), "-c", str(config)],
                log_path=edge.workdir / "mosquitto.log",
            )
            processes[f"edge-{n}"] = process.start_and_wait_port(edge.host, edge.port)
            settings.append(edge)
        yield Topology(core, settings, processes)
    finally:
        for process in reversed(processes.values()):
            process.stop()


@dataclass(frozen=True)
class ControlPlane:
    api: str
    token: str
    """An admin API token."""
    server: ManagedProcess


@contextlib.contextmanager
def control_plane(workdir: Path, core: BrokerSettings) -> Iterator[ControlPlane]:
    """``termfleet server run`` on SQLite in ``workdir``, subscribed to the core broker."""
    database_url = f"sqlite://{workdir / 'cp.sqlite3'}"
    port = free_port()
    argv = [sys.executable, "-m", "control_plane.cli", "--log-level", "warning", "server", "run",
            "--database-url", database_url, "--mqtt-url", core.url,
            "--http-port", str(port), "--client-id", "bench-connections-cp"]  # fmt: skip
    token = issue_token(database_url)
    server = ManagedProcess("control-plane", argv, workdir / "cp.log")
    server.start_and_wait_port("127.0.0.1", port)
    try:
        yield ControlPlane(f"http://127.0.0.1:{port}", token, server)
    finally:
        server.stop()
