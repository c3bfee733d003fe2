"""``termfleet agent``: the edge agent on a terminal."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from pathlib import Path

import click


@click.group()
def agent() -> None:
    """The edge agent that runs on each terminal."""


@agent.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    envvar="TERMFLEET_AGENT_CONFIG",
    help="The agent's TOML config (written by provisioning).",
)
def run(config_path: Path) -> None:
    """Connect, report presence, health and records, follow the downlink until SIGINT or SIGTERM.

    Records wait in ``state_dir/outbox.sqlite3`` until the control plane acknowledges them.
    """
    from edge.agent.config import ConfigError, load_config, read_password
    from edge.agent.delivery import DeliverySettings
    from edge.agent.outbox import OUTBOX_FILE, Outbox, OutboxError
    from edge.agent.runner import Agent, AgentIdentity, AgentTiming
    from edge.agent.sessions import FileSessionCounter
    from edge.agent.telemetry import SystemHealth
    from edge.mqtt import BrokerAddress

    try:
        config = load_config(config_path)
        password = read_password(config.broker)
        broker = BrokerAddress.from_url(config.broker.url)
    except (ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if config.broker.username or password:
        broker = broker.with_credentials(config.broker.username or None, password)
    if config.broker.ca_file:
        broker = dataclasses.replace(broker, ca_file=config.broker.ca_file)
    state_dir = Path(config.state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create state_dir {state_dir}: {exc.strerror}"
        raise click.ClickException(msg) from None
    if not os.access(state_dir, os.W_OK):
        msg = f"state_dir {state_dir} is not writable by this user"
        raise click.ClickException(msg)
    timing = AgentTiming(
        heartbeat_interval_s=config.telemetry.heartbeat_interval_s,
        full_snapshot_every=config.telemetry.full_snapshot_every,
        session_expiry_s=config.broker.session_expiry_s,
        keepalive_s=config.broker.keepalive_s,
    )
    try:
        outbox = Outbox(state_dir / OUTBOX_FILE, max_bytes=config.outbox.max_bytes)
    except OutboxError as exc:
        raise click.ClickException(str(exc)) from None
    the_agent = Agent(
        AgentIdentity(config.device_id, config.kind),
        broker,
        SystemHealth(),
        FileSessionCounter(state_dir),
        timing=timing,
        outbox=outbox,
        delivery=DeliverySettings(
            max_in_flight=config.delivery.max_in_flight,
            ack_timeout_s=config.delivery.ack_timeout_s,
        ),
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await the_agent.run(stop)

    try:
        asyncio.run(main())
    finally:
        the_agent.close()
