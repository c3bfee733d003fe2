"""From the config file to a running agent: the start-up behind every way of running one.

``termfleet agent run`` and ``python -m edge.agent`` both come here, so they cannot drift apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from edge.mqtt import BrokerAddress, tls_context

from .catalog_report import CatalogReport
from .commissioning import SelfTests, no_peripherals
from .config import AgentConfig, ConfigError, load_config, read_password
from .delivery import DeliverySettings
from .outbox import OUTBOX_FILE, Outbox, OutboxError
from .package_setup import build_package_manager, content_root
from .peripherals import PeripheralMonitor

if TYPE_CHECKING:
    from .package_target import FirmwareFlasher
    from .review_pad import ReviewPadLink
from .runner import Agent, AgentIdentity, AgentTiming
from .sessions import FileSessionCounter
from .telemetry import SystemHealth
from .twin_apply import TwinApplier


class StartError(RuntimeError):
    """The agent cannot start: its config, broker URL, state_dir or outbox is unusable."""


def build_agent(config_path: Path) -> Agent:
    """The agent the config file describes, with its outbox open; raises StartError."""
    try:
        config = load_config(config_path)
        broker = _broker(config)
    except (ConfigError, ValueError) as exc:
        raise StartError(str(exc)) from None
    state_dir = _writable_state_dir(Path(config.state_dir))
    monitor, review_pad = _peripherals(config)
    try:
        packages = build_package_manager(config, _flasher(monitor))
        outbox = Outbox(state_dir / OUTBOX_FILE, max_bytes=config.outbox.max_bytes)
    except (ConfigError, OutboxError) as exc:
        if monitor is not None:
            monitor.close()
        raise StartError(str(exc)) from None
    items = CatalogReport(content_root(config), kind=config.kind)
    health = SystemHealth(monitor.statuses if monitor else tuple, items.summary)
    checks = monitor.run_self_tests if monitor else no_peripherals
    return Agent(
        AgentIdentity(config.device_id, config.kind),
        broker,
        health,
        FileSessionCounter(state_dir),
        timing=AgentTiming(
            heartbeat_interval_s=config.telemetry.heartbeat_interval_s,
            full_snapshot_every=config.telemetry.full_snapshot_every,
            session_expiry_s=config.broker.session_expiry_s,
            keepalive_s=config.broker.keepalive_s,
        ),
        outbox=outbox,
        delivery=DeliverySettings(
            max_in_flight=config.delivery.max_in_flight,
            ack_timeout_s=config.delivery.ack_timeout_s,
            records_per_message=config.delivery.records_per_message,
        ),
        self_tests=SelfTests(state_dir, checks, _now),
        peripherals=monitor,
        review_pad=review_pad,
        packages=packages,
        twin=TwinApplier(state_dir, config.kind),
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _peripherals(config: AgentConfig) -> tuple[PeripheralMonitor | None, ReviewPadLink | None]:
    """The monitor of the config's peripherals and the review pad's link, if any.

    Without peripherals neither pyusb nor a driver is loaded: they cost memory such an agent
    never needs.
    """
    if config.peripherals == "none":
        return None, None
    from .peripheral_setup import build_bridge, review_pad_link  # noqa: PLC0415

    try:
        bridge = build_bridge(config)
    except ValueError as exc:
        raise StartError(str(exc)) from None
    return PeripheralMonitor(bridge, _now), review_pad_link(bridge, _now)


def _flasher(monitor: PeripheralMonitor | None) -> FirmwareFlasher | None:
    """Peripheral firmware goes through DFU on the monitor's bridge (usb and simulated alike)."""
    if monitor is None:
        return None
    from .firmware_flash import DfuFlasher  # noqa: PLC0415 - loads pyusb, as the bridge does

    return DfuFlasher(monitor.bridge)


def _broker(config: AgentConfig) -> BrokerAddress:
    """The broker's address with credentials; its TLS files are loaded once to check them."""
    password = read_password(config.broker)
    broker = dataclasses.replace(
        BrokerAddress.from_url(config.broker.url),
        ca_file=config.broker.ca_file or None,
        cert_file=config.broker.cert_file or None,
        key_file=config.broker.key_file or None,
    )
    if config.broker.username or password:
        broker = broker.with_credentials(config.broker.username or None, password)
    # A key that does not match its certificate would otherwise surface only at each connect,
    # as a retried connection error; at start it is a config mistake to report and stop on.
    tls_context(broker)
    return broker


def _writable_state_dir(state_dir: Path) -> Path:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        msg = f"cannot create state_dir {state_dir}: {exc.strerror}"
        raise StartError(msg) from None
    if not os.access(state_dir, os.W_OK):
        msg = f"state_dir {state_dir} is not writable by this user"
        raise StartError(msg)
    return state_dir


def run_until_signalled(agent: Agent) -> None:
    """Run the agent until SIGINT or SIGTERM, then close its outbox."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await agent.run(stop)

    try:
        asyncio.run(main())
    finally:
        agent.close()
