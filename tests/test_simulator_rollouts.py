"""Simulated terminals in rollouts: ``build_agents`` with content keys, a real control plane.

The terminals are the simulator's (``edge.simulator.fleet``: simulated health, USB
peripherals, citizen visits) run by ``run_fleet`` as ``termfleet simulate`` runs them, on a real
Mosquitto; the control plane runs in this process with a provisioning secret (it signs the
download URLs) and a content key, and the package is uploaded through its API.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from nacl.signing import SigningKey

from control_plane.cli import cli
from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.agent.package_setup import CONTENT_DIR
from edge.agent.runner import Agent, AgentTiming
from edge.content.manifest import PackageKind
from edge.content.package import pack
from edge.content.signing import new_signing_key, public_key_text, trusted_keys
from edge.content.source import scan_directory
from edge.protocol import Channel, DeviceKind
from edge.protocol import topics as wire
from edge.simulator.district import SimulatedTerminal
from edge.simulator.fleet import build_agents, close_agents, run_fleet
from edge.simulator.packages import (
    MAX_FLEET_THREADS,
    default_executor_size,
    fleet_executor_size,
)
from tests.support.control_plane import (
    RunningControlPlane,
    Signer,
    content_control_plane,
    upload_package,
)

NAME = "guide-cards"
WAIT_S = 60.0
KINDS = (DeviceKind.KIOSK, DeviceKind.STATION_PC, DeviceKind.BOOTH, DeviceKind.REVIEW_PAD)


def fleet_of(prefix: str, kinds: tuple[DeviceKind, ...]) -> list[SimulatedTerminal]:
    return [
        SimulatedTerminal(f"{prefix}-{kind.value}-{n:02d}", kind, "", "")
        for n, kind in enumerate(kinds)
    ]


def make_package(directory: Path, key: SigningKey, version: int) -> bytes:
    source = directory / f"cards-{version}"
    (source / "cards").mkdir(parents=True)
    (source / "cards" / "RS-0012.md").write_bytes(f"# 社保缴费证明 v{version}\n".encode())
    (source / "notice.txt").write_bytes("请携带身份证原件。\n".encode())
    out = directory / f"{NAME}-{version}.tfpkg"
    pack(scan_directory(source), out, kind=PackageKind.CONTENT, name=NAME, version=version, key=key)
    return out.read_bytes()


@dataclass
class Stand:
    cp: RunningControlPlane
    agents: list[Agent]
    state_dir: Path

    async def post(self, path: str, body: Any) -> Any:  # noqa: ANN401 - JSON
        async with self.cp.http.post(self.cp.url + path, json=body) as response:
            assert response.status in {200, 201}, await response.text()
            return await response.json()

    async def device_steps(self, rollout_id: str) -> dict[str, str]:
        view = await self.cp.get_json(f"/api/v1/rollouts/{rollout_id}/devices?limit=100")
        return {d["device_id"]: d["step"] for d in view["items"]}

    def installed(self, device_id: str) -> int | None:
        agent = next(a for a in self.agents if a.identity.device_id == device_id)
        assert agent.packages is not None
        return agent.packages.store.installed_version(NAME)


@contextlib.asynccontextmanager
async def simulated_stand(
    broker: BrokerSettings, database_url: str, workdir: Path, terminals: list[SimulatedTerminal]
) -> AsyncIterator[Stand]:
    """The control plane with the package uploaded, and the fleet running and registered."""
    signer = Signer.new()
    address = mqtt.BrokerAddress(broker.host, broker.port)
    state_dir = workdir / "simulator"
    agents = build_agents(
        terminals,
        address,
        AgentTiming(heartbeat_interval_s=2, keepalive_s=10),
        7,
        state_dir,
        content_keys=signer.trusted(),
    )
    stop = asyncio.Event()
    fleet: asyncio.Task[None] | None = None
    try:
        async with content_control_plane(broker, database_url, workdir, signer) as cp:
            for version in (1, 2):
                await upload_package(cp, make_package(workdir, signer.key, version))
            # Citizens keep coming, as in `termfleet simulate`: installs go between sessions.
            fleet = asyncio.create_task(run_fleet(agents, stop, visits_per_minute=6))

            async def registered() -> bool:
                view = await cp.get_json("/api/v1/devices?limit=100")
                return {t.device_id for t in terminals} <= {d["device_id"] for d in view["items"]}

            await cp.wait_for(registered, WAIT_S)
            yield Stand(cp, agents, state_dir)
            stop.set()
            await asyncio.wait_for(fleet, WAIT_S)
    finally:
        stop.set()
        if fleet is not None and not fleet.done():
            fleet.cancel()
            await asyncio.gather(fleet, return_exceptions=True)
        close_agents(agents)
        await clear_retained(broker, [t.device_id for t in terminals])


async def clear_retained(broker: BrokerSettings, device_ids: list[str]) -> None:
    options = mqtt.SessionOptions(client_id=f"clean-{device_ids[0]}")
    async with mqtt.connect(mqtt.BrokerAddress(broker.host, broker.port), options) as conn:
        for device_id in device_ids:
            for topic in (
                wire.uplink(device_id, Channel.PRESENCE),
                wire.uplink(device_id, Channel.PACKAGES),
                wire.downlink(device_id, Channel.CONTENT),
            ):
                await conn.publish(mqtt.Outgoing(topic, b"", qos=1, retain=True))


def test_review_pads_get_no_package_manager_and_without_keys_nobody_does(
    tmp_path: Path, device_prefix: str
) -> None:
    terminals = fleet_of(device_prefix, KINDS)
    address = mqtt.BrokerAddress("127.0.0.1", 1)
    timing = AgentTiming(heartbeat_interval_s=30)
    keys = trusted_keys([public_key_text(new_signing_key().verify_key)])
    with_keys = build_agents(terminals, address, timing, 7, tmp_path / "a", content_keys=keys)
    without = build_agents(terminals, address, timing, 7, tmp_path / "b")
    try:
        taking = {a.identity.kind for a in with_keys if a.packages is not None}
        assert taking == {DeviceKind.KIOSK, DeviceKind.STATION_PC, DeviceKind.BOOTH}
        assert all(a.packages is None for a in without)
    finally:
        close_agents(with_keys + without)


async def test_simulated_kiosks_station_pcs_and_booths_complete_a_rollout_pads_left_out(
    own_broker: tuple[BrokerSettings, object], sqlite_url: str, device_prefix: str, tmp_path: Path
) -> None:
    # A broker of its own: targeting by kind reaches every device the control plane knows, and
    # the session's broker carries other tests' terminals too.
    broker = own_broker[0]
    terminals = fleet_of(device_prefix, (*KINDS, DeviceKind.KIOSK))
    taking = [t.device_id for t in terminals if t.kind is not DeviceKind.REVIEW_PAD]
    rollout_id = f"{device_prefix}-cards-1"
    async with simulated_stand(broker, sqlite_url, tmp_path, terminals) as s:
        made = await s.post("/api/v1/rollouts", {
            "id": rollout_id, "package": {"name": NAME, "version": 1},
            "target": {"kinds": ["kiosk", "station_pc", "booth"]}, "waves": ["50", "100"],
        })  # fmt: skip
        assert made["device_count"] == len(taking)

        async def completed() -> dict[str, Any] | None:
            view = await s.cp.get_json(f"/api/v1/rollouts/{rollout_id}")
            return view if view["phase"] == "completed" else None

        view = await s.cp.wait_for(completed, WAIT_S)
        assert view["steps"]["succeeded"] == len(taking)
        assert sorted(await s.device_steps(rollout_id)) == sorted(taking)
        for device_id in taking:
            assert s.installed(device_id) == 1
            card = s.state_dir / device_id / CONTENT_DIR / NAME / "current" / "cards" / "RS-0012.md"
            assert card.read_text() == "# 社保缴费证明 v1\n"
            # Nothing left behind in the downloads once installed.
            assert list((s.state_dir / device_id / "downloads").glob("*.tfpkg*")) == []


async def test_a_review_pad_targeted_by_id_reports_nothing_while_the_kiosk_succeeds(
    broker: BrokerSettings, sqlite_url: str, device_prefix: str, tmp_path: Path
) -> None:
    terminals = fleet_of(device_prefix, (DeviceKind.KIOSK, DeviceKind.REVIEW_PAD))
    kiosk, pad = (t.device_id for t in terminals)
    rollout_id = f"{device_prefix}-cards-1"
    async with simulated_stand(broker, sqlite_url, tmp_path, terminals) as s:
        await s.post("/api/v1/rollouts", {
            "id": rollout_id, "package": {"name": NAME, "version": 1},
            "target": {"device_ids": [kiosk, pad]}, "waves": ["100"],
        })  # fmt: skip

        async def kiosk_done() -> dict[str, str] | None:
            steps = await s.device_steps(rollout_id)
            return steps if steps[kiosk] == "succeeded" else None

        steps = await s.cp.wait_for(kiosk_done, WAIT_S)
        # The pad was told, but takes no packages: it never reports (the rollout's timeout
        # ends its wait), so it stays notified.
        assert steps[pad] == "notified"
        view = await s.cp.get_json(f"/api/v1/rollouts/{rollout_id}")
        assert view["phase"] == "running"
        assert s.installed(kiosk) == 1


@pytest.mark.parametrize(
    ("terminals", "expected"),
    [
        (0, default_executor_size()),
        (1, default_executor_size()),
        (40, max(default_executor_size(), 80)),
        (128, max(default_executor_size(), MAX_FLEET_THREADS)),
        (150, max(default_executor_size(), MAX_FLEET_THREADS)),
        (100_000, max(default_executor_size(), MAX_FLEET_THREADS)),
    ],
)
def test_the_fleet_executor_has_two_threads_a_terminal_bounded(
    terminals: int, expected: int
) -> None:
    assert fleet_executor_size(terminals) == expected


async def test_run_fleet_gives_its_loop_an_executor_for_every_terminal(
    broker: BrokerSettings, device_prefix: str, tmp_path: Path
) -> None:
    """Twice as many blocking jobs as terminals run at once: a default pool would deadlock."""
    terminals = fleet_of(device_prefix, (DeviceKind.BOOTH,) * 20)
    jobs = 2 * len(terminals)
    assert default_executor_size() < jobs, "the test needs a default pool smaller than this"
    address = mqtt.BrokerAddress(broker.host, broker.port)
    agents = build_agents(terminals, address, AgentTiming(heartbeat_interval_s=5), 7, tmp_path)
    stop = asyncio.Event()
    fleet = asyncio.create_task(run_fleet(agents, stop))
    try:
        await asyncio.sleep(0)  # run_fleet sets the executor before its first await
        together = threading.Barrier(jobs, timeout=10)
        loop = asyncio.get_running_loop()
        waited = await asyncio.gather(
            *(loop.run_in_executor(None, together.wait) for _ in range(jobs))
        )
        assert sorted(waited) == list(range(jobs))
    finally:
        stop.set()
        await asyncio.wait_for(fleet, WAIT_S)
        close_agents(agents)
        await clear_retained(broker, [t.device_id for t in terminals])


@pytest.mark.parametrize(
    ("content", "message"),
    [("not a key\n", "not an Ed25519 public key"), (None, "does not exist")],
)
def test_simulate_refuses_a_content_key_that_is_no_key(
    tmp_path: Path, content: str | None, message: str
) -> None:
    key_file = tmp_path / "content.pub"
    if content is not None:
        key_file.write_text(content)
    args = ["simulate", "--devices", "1", "--state-dir", str(tmp_path / "sim")]
    result = CliRunner().invoke(cli, [*args, "--content-key", str(key_file)])
    assert result.exit_code == 2, result.output
    assert "--content-key" in result.output
    assert message in result.output
    assert not (tmp_path / "sim").exists(), "nothing was started"
