"""The agent's side of the device twin on a real Mosquitto, and end to end through the server.

The retained desired config arrives on connect and is applied, reported and kept; an older or
equal version is ignored, across a restart too; a bad value or an unwritable state directory is
reported as failed and applies nothing. Through the real control plane, a layer put over the
API reaches a connected agent, which reports it applied, and the counts follow.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.agent.backoff import Backoff
from edge.agent.runner import Agent, AgentIdentity, AgentTiming
from edge.agent.sessions import MemorySessionCounter
from edge.agent.twin_apply import APP_CONFIG_FILE, APPLIED_FILE, TwinApplier
from edge.protocol import Channel, DesiredConfig, DeviceKind, ReportedConfig, decode, encode
from edge.protocol import topics as wire
from edge.protocol.config import ApplyStatus
from edge.simulator.health import SimulatedHealth
from tests.support.agent_run import connected_agent
from tests.support.control_plane import running_control_plane

WAIT_S = 10.0
QUIET_S = 1.0
"""How long a message that must not come is waited for."""


def make_agent(device_id: str, broker: BrokerSettings, state_dir: Path) -> Agent:
    return Agent(
        AgentIdentity(device_id, DeviceKind.KIOSK),
        mqtt.BrokerAddress(broker.host, broker.port),
        SimulatedHealth(DeviceKind.KIOSK, random.Random(1)),
        MemorySessionCounter(1),
        timing=AgentTiming(heartbeat_interval_s=0.5, keepalive_s=5),
        backoff=Backoff(initial_s=0.1, max_s=0.3),
        twin=TwinApplier(state_dir, DeviceKind.KIOSK),
    )


class Device:
    """The control plane's end of one device's twin, as a plain MQTT client."""

    def __init__(self, conn: mqtt.Connection, device_id: str) -> None:
        self.conn = conn
        self.device_id = device_id
        self.reports: asyncio.Queue[ReportedConfig] = asyncio.Queue()

    async def desire(self, version: int, values: dict[str, Any]) -> None:
        payload = encode(DesiredConfig(version=version, values=values))
        topic = wire.downlink(self.device_id, Channel.DESIRED)
        await self.conn.publish(mqtt.Outgoing(topic, payload, qos=1, retain=True))

    async def report(self) -> ReportedConfig:
        return await asyncio.wait_for(self.reports.get(), WAIT_S)

    async def no_report(self) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.reports.get(), QUIET_S)


@pytest.fixture
async def device(broker: BrokerSettings, device_prefix: str) -> AsyncIterator[Device]:
    """Reads the device's reports; clears its retained desired config and report afterwards."""
    device_id = f"{device_prefix}-kiosk"
    address = mqtt.BrokerAddress(broker.host, broker.port)
    options = mqtt.SessionOptions(client_id=f"twin-{device_id}")
    async with mqtt.connect(address, options) as conn:
        end = Device(conn, device_id)
        await conn.subscribe(wire.uplink(device_id, Channel.REPORTED), qos=1)

        async def read() -> None:
            async for incoming in conn.messages():
                if incoming.payload:
                    report = decode(Channel.REPORTED, incoming.payload)
                    assert isinstance(report, ReportedConfig)
                    await end.reports.put(report)

        reading = asyncio.create_task(read(), name="reports")
        try:
            yield end
        finally:
            reading.cancel()
            for topic in (
                wire.downlink(device_id, Channel.DESIRED),
                wire.uplink(device_id, Channel.REPORTED),
                wire.uplink(device_id, Channel.PRESENCE),
            ):
                await conn.publish(mqtt.Outgoing(topic, b"", qos=1, retain=True))


def read_json(path: Path) -> Any:  # noqa: ANN401 - JSON
    return json.loads(path.read_text())


async def test_the_retained_desired_config_is_applied_on_connect_and_reported(
    broker: BrokerSettings, device: Device, tmp_path: Path
) -> None:
    await device.desire(5, {"telemetry.heartbeat_interval_s": 20, "ui.idle_timeout_s": 90})
    agent = make_agent(device.device_id, broker, tmp_path)

    async with connected_agent(agent, close=True, wait_s=WAIT_S):
        report = await device.report()

    assert (report.version, report.status, report.error) == (5, ApplyStatus.APPLIED, "")
    assert report.values["ui.idle_timeout_s"] == 90
    assert report.values["ui.language"] == "zh-CN"  # the default, for every key of its kind
    assert "review.prompt_timeout_s" not in report.values  # a review pad's key
    assert agent._timing.heartbeat_interval_s == 20.0  # noqa: SLF001 - what the heartbeats use
    app_config = read_json(tmp_path / APP_CONFIG_FILE)
    assert app_config["version"] == 5
    assert app_config["values"] == report.values
    assert (tmp_path / APP_CONFIG_FILE).stat().st_mode & 0o777 == 0o644
    assert read_json(tmp_path / APPLIED_FILE) == {
        "version": 5,
        "values": {"telemetry.heartbeat_interval_s": 20, "ui.idle_timeout_s": 90},
    }


async def test_older_and_equal_versions_are_ignored_across_a_restart(
    broker: BrokerSettings, device: Device, tmp_path: Path
) -> None:
    await device.desire(5, {"ui.idle_timeout_s": 90})
    async with connected_agent(
        make_agent(device.device_id, broker, tmp_path), close=True, wait_s=WAIT_S
    ):
        assert (await device.report()).version == 5
        await device.desire(3, {"ui.idle_timeout_s": 300})
        await device.no_report()

    # Restarted: the applied version is remembered, so the retained older one is ignored too.
    agent = make_agent(device.device_id, broker, tmp_path)
    async with connected_agent(agent, close=True, wait_s=WAIT_S):
        await device.no_report()
        await device.desire(6, {"ui.idle_timeout_s": 100})
        newer = await device.report()

    assert (newer.version, newer.status) == (6, ApplyStatus.APPLIED)
    assert read_json(tmp_path / APPLIED_FILE)["values"] == {"ui.idle_timeout_s": 100}


async def test_a_bad_value_is_reported_failed_naming_the_key_and_nothing_applies(
    broker: BrokerSettings, device: Device, tmp_path: Path
) -> None:
    await device.desire(5, {"ui.idle_timeout_s": 90})
    async with connected_agent(
        make_agent(device.device_id, broker, tmp_path), close=True, wait_s=WAIT_S
    ):
        await device.report()
        await device.desire(7, {"ui.idle_timeout_s": 5, "ui.language": "en"})
        failed = await device.report()

    assert (failed.version, failed.status) == (7, ApplyStatus.FAILED)
    assert "ui.idle_timeout_s" in failed.error
    assert "outside 15 to 1800" in failed.error
    assert failed.values["ui.idle_timeout_s"] == 90  # what it still runs with
    assert failed.values["ui.language"] == "zh-CN"
    assert read_json(tmp_path / APPLIED_FILE)["version"] == 5
    assert read_json(tmp_path / APP_CONFIG_FILE)["values"]["ui.idle_timeout_s"] == 90


async def test_an_unwritable_state_directory_is_reported_failed(
    broker: BrokerSettings, device: Device, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / APP_CONFIG_FILE).mkdir()  # a directory where the file must go: cannot replace
    await device.desire(2, {"ui.language": "en"})
    async with connected_agent(
        make_agent(device.device_id, broker, state_dir), close=True, wait_s=WAIT_S
    ):
        failed = await device.report()

    assert (failed.version, failed.status) == (2, ApplyStatus.FAILED)
    assert "cannot write the config" in failed.error
    assert not (state_dir / APPLIED_FILE).exists()


def test_unknown_keys_are_dropped_and_an_unreadable_memory_is_nothing_applied(
    tmp_path: Path,
) -> None:
    (tmp_path / APPLIED_FILE).write_text("{not json")
    twin = TwinApplier(tmp_path, DeviceKind.KIOSK)
    assert twin.version == 0

    report = twin.receive(DesiredConfig(version=1, values={"ui.new_key": 1, "ui.language": "en"}))

    assert report is not None
    assert report.status is ApplyStatus.APPLIED
    assert "ui.new_key" not in report.values
    assert TwinApplier(tmp_path, DeviceKind.KIOSK).values == {"ui.language": "en"}


async def test_a_layer_put_over_the_api_reaches_the_agent_which_reports_it_applied(
    broker: BrokerSettings, device: Device, tmp_path: Path, database_url: str
) -> None:
    agent = make_agent(device.device_id, broker, tmp_path / "agent")
    async with (
        running_control_plane(broker, database_url) as cp,
        connected_agent(agent, close=True, wait_s=WAIT_S),
    ):

        async def known() -> bool:
            async with cp.http.get(f"{cp.url}/api/v1/devices/{device.device_id}") as resp:
                return resp.status == 200

        await cp.wait_for(known)
        layer = {"scope": {"kind": "device", "device": device.device_id},
                 "values": {"ui.idle_timeout_s": 45}}  # fmt: skip
        async with cp.http.put(f"{cp.url}/api/v1/config/layers/front", json=layer) as resp:
            assert resp.status == 201, await resp.text()
        report = await device.report()

        async def applied() -> dict[str, Any] | None:
            view = await cp.get_json(f"/api/v1/devices/{device.device_id}/config")
            return view if view["state"] == "applied" else None

        view = await cp.wait_for(applied)
        metrics = await cp.wait_for(
            lambda: _metric(cp.metrics(), 'layer="front",state="applied"} 1.0'), timeout_s=15
        )

    assert (report.status, report.values["ui.idle_timeout_s"]) == (ApplyStatus.APPLIED, 45)
    assert view["desired"]["sources"] == {"ui.idle_timeout_s": "front"}
    assert view["reported"]["version"] == view["desired"]["version"] == report.version
    assert 'termfleet_config_layer_devices{layer="front",state="targeted"} 1.0' in metrics


async def _metric(text: Any, wanted: str) -> str | None:  # noqa: ANN401 - an awaitable
    body = await text
    return body if wanted in body else None
