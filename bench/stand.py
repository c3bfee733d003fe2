"""A broker and a control plane as real processes, for the benchmarks that measure either side."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import ManagedProcess, free_port
from provisioning.credentials import create_secret


@dataclass(frozen=True)
class Stand:
    """A broker and a control plane that acknowledges records after their commit."""

    workdir: Path
    broker: BrokerSettings
    api: str
    database_url: str
    server: ManagedProcess
    token: str | None
    """An admin API token, when one was asked for."""


@contextlib.contextmanager
def stand(
    workdir: Path, database_url: str | None = None, *, with_token: bool = False
) -> Iterator[Stand]:
    """Start both (SQLite in ``workdir`` unless a URL is given) and stop both on the way out."""
    database_url = database_url or f"sqlite://{workdir / 'cp.sqlite3'}"
    broker = BrokerSettings(workdir / "broker", free_port())
    broker_process = start_broker(broker)
    port = free_port()
    argv = [sys.executable, "-m", "control_plane.cli", "--log-level", "warning", "server", "run",
            "--database-url", database_url, "--mqtt-url", broker.url,
            "--http-port", str(port), "--client-id", "bench-cp"]  # fmt: skip
    try:
        token = issue_token(database_url) if with_token else None
        server = ManagedProcess("control-plane", argv, workdir / "cp.log")
        server.start_and_wait_port("127.0.0.1", port)
        try:
            yield Stand(workdir, broker, f"http://127.0.0.1:{port}", database_url, server, token)
        finally:
            server.stop()
    finally:
        broker_process.stop()


@dataclass(frozen=True)
class ContentStand:
    """A broker and a control plane holding a provisioning secret and a content key."""

    api: str
    token: str
    """An admin API token."""
    broker: BrokerSettings
    server: ManagedProcess
    secret_file: Path


@contextlib.contextmanager
def content_stand(
    workdir: Path, public_key: Path, *, database_url: str | None = None, client_id: str
) -> Iterator[ContentStand]:
    """``server run`` that takes packages signed for ``public_key`` and signs download URLs."""
    database_url = database_url or f"sqlite://{workdir / 'cp.sqlite3'}"
    secret = workdir / "secret"
    create_secret(secret)
    broker = BrokerSettings(workdir / "broker", free_port())
    broker_process = start_broker(broker)
    port = free_port()
    argv = [sys.executable, "-m", "control_plane.cli", "--log-level", "warning", "server", "run",
            "--database-url", database_url, "--mqtt-url", broker.url, "--http-port", str(port),
            "--client-id", client_id, "--secret-file", str(secret),
            "--content-key", str(public_key),
            "--content-dir", str(workdir / "content")]  # fmt: skip
    try:
        token = issue_token(database_url)
        server = ManagedProcess("control-plane", argv, workdir / "cp.log")
        server.start_and_wait_port("127.0.0.1", port)
        try:
            yield ContentStand(f"http://127.0.0.1:{port}", token, broker, server, secret)
        finally:
            server.stop()
    finally:
        broker_process.stop()


def issue_token(database_url: str) -> str:
    """An admin token made by ``termfleet tokens create``, as an operator would."""
    argv = [sys.executable, "-m", "control_plane.cli", "tokens", "create", "--name", "bench",
            "--role", "admin", "--json", "--database-url", database_url]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)  # noqa: S603
    secret: str = json.loads(done.stdout)["token"]
    return secret
