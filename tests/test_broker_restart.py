"""A broker that dies and comes back.

The agent and the ingest reconnect on their own, and the agent comes back online with a newer
presence session.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import ManagedProcess, free_port
from edge import mqtt
from edge.agent.backoff import Backoff
from edge.agent.runner import Agent, AgentIdentity, AgentTiming
from edge.agent.sessions import MemorySessionCounter
from edge.protocol import DeviceKind
from edge.simulator.health import SimulatedHealth
from tests.support.control_plane import running_control_plane

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_agent_and_ingest_come_back_after_the_broker_restarts(
    tmp_path: Path, sqlite_url: str, device_prefix: str, how: signal.Signals
) -> None:
    settings = BrokerSettings(workdir=tmp_path / "broker", port=free_port())
    broker: ManagedProcess = start_broker(settings)
    device_id = f"{device_prefix}-kiosk"
    agent = Agent(
        AgentIdentity(device_id, DeviceKind.KIOSK),
        mqtt.BrokerAddress(settings.host, settings.port),
        SimulatedHealth(DeviceKind.KIOSK, random.Random(1)),
        MemorySessionCounter(100),
        timing=AgentTiming(heartbeat_interval_s=0.2, keepalive_s=2),
        # Retries come fast so the test does not wait on jitter; the policy itself is unit-tested.
        backoff=Backoff(initial_s=0.1, max_s=0.3),
    )
    stop = asyncio.Event()
    try:
        async with running_control_plane(settings, sqlite_url) as cp:
            run = asyncio.create_task(agent.run(stop))

            async def presence() -> tuple[str, int] | None:
                items = (await cp.get_json("/api/v1/devices"))["items"]
                found = next((d for d in items if d["device_id"] == device_id), None)
                return (found["presence"], found["session"]) if found else None

            async def online() -> bool:
                return (await presence() or ("", 0))[0] == "online"

            await cp.wait_for(online)
            first = await presence()
            assert first is not None
            broker.signal(how)
            assert broker.popen is not None
            broker.popen.wait(timeout=10)
            broker.stop()
            await asyncio.wait_for(_until(lambda: not agent.connected.is_set()), 10)
            assert not run.done(), "the agent must survive losing the broker"

            broker = start_broker(settings)

            async def ingest_back() -> bool:
                return bool((await cp.get_json("/healthz"))["mqtt_connected"])

            await cp.wait_for(ingest_back, timeout_s=20)
            await asyncio.wait_for(agent.connected.wait(), 20)

            async def newer_session_online() -> bool:
                now = await presence()
                return now is not None and now[0] == "online" and now[1] > first[1]

            await cp.wait_for(newer_session_online, timeout_s=20)
            stop.set()
            await asyncio.wait_for(run, 10)
    finally:
        stop.set()
        broker.stop()


async def _until(condition: Callable[[], bool]) -> None:
    # Polls: the agent offers an event for "connected" but none for "disconnected".
    while not condition():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
