"""The agent's packages through a real Mosquitto: the notice down, sessions, the report up.

A fake control plane publishes a retained content notice on the device's downlink and reads
the retained ``packages`` report as its ingest would; the agent records citizen sessions as the
kiosk application makes it, and installs only once the session has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.agent.backoff import Backoff
from edge.agent.citizen_activity import CitizenActivity
from edge.agent.package_plan import Blocker
from edge.agent.package_target import ManagerTiming
from edge.agent.package_work import FetchSettings
from edge.agent.packages import PackageManager
from edge.agent.runner import Agent, AgentIdentity, AgentTiming
from edge.agent.sessions import MemorySessionCounter
from edge.protocol import (
    Channel,
    DeviceKind,
    InstallWhen,
    PackagePhase,
    PackageReport,
    PackageState,
    SessionEnded,
    SessionStarted,
    decode,
    encode,
)
from edge.protocol import topics as wire
from edge.simulator.health import SimulatedHealth
from tests.support.agent_run import connected_agent
from tests.test_agent_packages import KEYS, NAME, make_package, notice, target_for
from tests.test_content_download import Behaviour, serving

WAIT_S = 20.0


def make_agent(device_id: str, broker: BrokerSettings, root: Path) -> Agent:
    packages = PackageManager(
        root / "content",
        root / "downloads",
        KEYS,
        CitizenActivity(time.monotonic),
        fetch=FetchSettings(timeout_s=5),
        timing=ManagerTiming(tick_s=0.05),
    )
    return Agent(
        AgentIdentity(device_id, DeviceKind.KIOSK),
        mqtt.BrokerAddress(broker.host, broker.port),
        SimulatedHealth(DeviceKind.KIOSK, random.Random(1)),
        MemorySessionCounter(100),
        timing=AgentTiming(heartbeat_interval_s=5, keepalive_s=5),
        backoff=Backoff(initial_s=0.1, max_s=0.3),
        packages=packages,
    )


class ControlPlane:
    """Publishes the content notice and keeps every package report received."""

    def __init__(self, conn: mqtt.Connection, device_id: str) -> None:
        self.conn = conn
        self.device_id = device_id
        self.reports: list[tuple[bool, PackageReport]] = []
        """(retained, report) in arrival order."""

    async def receive(self) -> None:
        async for incoming in self.conn.messages():
            if incoming.payload:
                report = decode(Channel.PACKAGES, incoming.payload)
                assert isinstance(report, PackageReport)
                self.reports.append((incoming.retain, report))

    async def until(self, check: Callable[[PackageState], bool]) -> PackageState:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            for _, report in reversed(self.reports):
                found = [s for s in report.packages if s.name == NAME and check(s)]
                if found:
                    return found[0]
            await asyncio.sleep(0.02)
        pytest.fail(f"no report matched; last: {self.reports[-1:] or None}")


@contextlib.asynccontextmanager
async def control_plane(broker: BrokerSettings, device_id: str) -> AsyncIterator[ControlPlane]:
    address = mqtt.BrokerAddress(broker.host, broker.port)
    options = mqtt.SessionOptions(client_id=f"cp-{device_id}-{random.getrandbits(32):x}")
    async with mqtt.connect(address, options) as conn:
        await conn.subscribe(wire.uplink(device_id, Channel.PACKAGES), qos=1)
        cp = ControlPlane(conn, device_id)
        receiving = asyncio.create_task(cp.receive(), name="cp-receive")
        try:
            yield cp
        finally:
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiving


@pytest.fixture
async def device_id(broker: BrokerSettings, device_prefix: str) -> AsyncIterator[str]:
    """A kiosk whose retained messages (presence, packages, content) are cleared afterwards."""
    device_id = f"{device_prefix}-kiosk"
    yield device_id
    address = mqtt.BrokerAddress(broker.host, broker.port)
    async with mqtt.connect(address, mqtt.SessionOptions(client_id=f"clean-{device_id}")) as conn:
        for topic in (
            wire.uplink(device_id, Channel.PRESENCE),
            wire.uplink(device_id, Channel.PACKAGES),
            wire.downlink(device_id, Channel.CONTENT),
        ):
            await conn.publish(mqtt.Outgoing(topic, b"", qos=1, retain=True))


async def test_a_notice_down_installs_after_the_session_and_the_report_is_retained(
    broker: BrokerSettings, device_id: str, tmp_path: Path
) -> None:
    body = make_package(tmp_path)
    agent = make_agent(device_id, broker, tmp_path / "agent")
    content_topic = wire.downlink(device_id, Channel.CONTENT)
    with serving(Behaviour(body=body)) as url:
        async with control_plane(broker, device_id) as cp, connected_agent(agent):
            await agent.record(SessionStarted(session_id="s-1"))
            orders = target_for(url, body, rollout_id="ro-cards-1", install=InstallWhen.NOW)
            await cp.conn.publish(
                mqtt.Outgoing(content_topic, encode(notice(orders)), qos=1, retain=True)
            )
            waiting = await cp.until(lambda s: s.detail == Blocker.IN_SESSION.value)
            assert (waiting.phase, waiting.installed) == (PackagePhase.STAGED, None)

            await agent.record(SessionEnded(session_id="s-1", duration_s=30))
            await cp.until(lambda s: s.phase is PackagePhase.INSTALLED)

    # What the control plane reads on (re)subscribing: the retained report, complete.
    async with control_plane(broker, device_id) as later:
        state = await later.until(lambda s: s.phase is PackagePhase.INSTALLED)
        assert later.reports[0][0], "the report is retained"
    assert (state.installed, state.target, state.rollout_id) == (1, 1, "ro-cards-1")
    assert state.bytes_done == state.bytes_total == len(body)
    assert state.at is not None
    assert later.reports[0][1].at is not None


async def test_the_report_is_published_again_after_each_reconnect(
    broker: BrokerSettings, device_id: str, tmp_path: Path
) -> None:
    body = make_package(tmp_path)
    content_topic = wire.downlink(device_id, Channel.CONTENT)
    with serving(Behaviour(body=body)) as url:
        async with control_plane(broker, device_id) as cp:
            orders = notice(target_for(url, body, install=InstallWhen.NOW))
            await cp.conn.publish(mqtt.Outgoing(content_topic, encode(orders), qos=1, retain=True))
            async with connected_agent(make_agent(device_id, broker, tmp_path / "agent")):
                await cp.until(lambda s: s.phase is PackagePhase.INSTALLED)
            live_before = sum(1 for retained, _ in cp.reports if not retained)

            # A restarted agent reconnects, reads the retained notice, finds it installed.
            async with connected_agent(make_agent(device_id, broker, tmp_path / "agent")):
                deadline = time.monotonic() + WAIT_S
                while sum(1 for retained, _ in cp.reports if not retained) == live_before:
                    assert time.monotonic() < deadline, "no report after the reconnect"
                    await asyncio.sleep(0.02)
                state = await cp.until(lambda s: s.phase is PackagePhase.INSTALLED)
    assert state.installed == 1
