"""Rollouts end to end: a real control plane, a real Mosquitto, real agents, real downloads.

The control plane runs in this process with a provisioning secret (it signs download URLs) and
a content key; the package is uploaded through the API as an administrator would. Each terminal
is an ``Agent`` with its own ``PackageManager``, connected to the broker like any other: notices
come down on its ``content`` channel, reports go up on ``packages``, and it downloads from the
control plane through a proxy that can cut each download short.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from control_plane.rollouts import percent, split_waves
from control_plane.services.broker import BrokerSettings
from control_plane.services.processes import free_port
from edge import mqtt
from edge.agent.backoff import Backoff
from edge.agent.citizen_activity import CitizenActivity
from edge.agent.package_target import ManagerTiming
from edge.agent.package_work import FetchSettings
from edge.agent.packages import PackageManager
from edge.agent.runner import Agent, AgentIdentity, AgentTiming
from edge.agent.sessions import MemorySessionCounter
from edge.content.manifest import PackageKind
from edge.content.package import pack
from edge.content.source import scan_directory
from edge.protocol import Channel, DeviceKind, PackagePhase
from edge.protocol import topics as wire
from edge.simulator.health import SimulatedHealth
from tests.support.control_plane import (
    RunningControlPlane,
    Signer,
    content_control_plane,
    upload_package,
)

NAME = "guide-cards"
WAIT_S = 60.0
CUT_AFTER_BYTES = 64 * 1024
TWO_WAVES = ("20", "100")


class CuttingProxy:
    """Forwards package downloads to the control plane, cutting the first ones short.

    Each device's first ``cuts`` downloads end after ``CUT_AFTER_BYTES`` of the body, the
    connection dropped as a village station's 4G drops it; the agent must resume with Range.
    """

    def __init__(self, upstream: str, cuts: int) -> None:
        self.upstream = upstream
        self.cuts = cuts
        self.cut: dict[str, int] = {}
        self.ranges: list[str] = []

    async def forward(self, request: web.Request) -> web.StreamResponse:
        device = request.query.get("device", "")
        headers = {k: v for k, v in request.headers.items() if k in ("Range", "If-Range")}
        self.ranges.append(headers.get("Range", ""))
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.upstream + request.path_qs, headers=headers) as upstream,
        ):
            response = web.StreamResponse(status=upstream.status)
            for name in ("Content-Length", "Content-Range", "ETag", "Accept-Ranges"):
                if name in upstream.headers:
                    response.headers[name] = upstream.headers[name]
            await response.prepare(request)
            cutting = self.cut.get(device, 0) < self.cuts
            sent = 0
            async for chunk in upstream.content.iter_chunked(16 * 1024):
                await response.write(chunk)
                sent += len(chunk)
                if cutting and sent >= CUT_AFTER_BYTES:
                    self.cut[device] = self.cut.get(device, 0) + 1
                    assert request.transport is not None
                    request.transport.close()
                    return response
            await response.write_eof()
            return response


@dataclass
class Stand:
    cp: RunningControlPlane
    proxy: CuttingProxy
    root: Path
    broker: BrokerSettings
    keys: Any
    sha256: str = ""
    agents: dict[str, Agent] = field(default_factory=dict)

    async def post(self, path: str, body: Any) -> Any:  # noqa: ANN401 - JSON
        async with self.cp.http.post(self.cp.url + path, json=body) as response:
            assert response.status in {200, 201}, await response.text()
            return await response.json()

    async def rollout(self, rollout_id: str) -> dict[str, Any]:
        return await self.cp.get_json(f"/api/v1/rollouts/{rollout_id}")

    async def until(self, rollout_id: str, phase: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            view = await self.rollout(rollout_id)
            return view if view["phase"] == phase else None

        return await self.cp.wait_for(reached, WAIT_S)

    def agent(self, device_id: str, *, broken_disk: bool = False) -> Agent:
        root = self.root / device_id
        content = root / "content"
        if broken_disk:
            # The package's versions directory is a file: every install fails on the disk.
            (content / NAME).mkdir(parents=True)
            (content / NAME / "versions").write_bytes(b"")
        packages = PackageManager(
            content,
            root / "downloads",
            self.keys,
            CitizenActivity(time.monotonic),
            fetch=FetchSettings(timeout_s=10),
            timing=ManagerTiming(tick_s=0.05, retry_after_s=0.2, progress_interval_s=0.2),
            backoff=lambda: Backoff(initial_s=0.05, max_s=0.2),
        )
        agent = Agent(
            AgentIdentity(device_id, DeviceKind.KIOSK),
            mqtt.BrokerAddress(self.broker.host, self.broker.port),
            SimulatedHealth(DeviceKind.KIOSK, random.Random(device_id)),
            MemorySessionCounter(int(time.time() * 1000)),
            timing=AgentTiming(heartbeat_interval_s=5, keepalive_s=10),
            backoff=Backoff(initial_s=0.1, max_s=0.5),
            packages=packages,
        )
        self.agents[device_id] = agent
        return agent


def make_package(directory: Path, key: Any, size: int) -> Path:  # noqa: ANN401 - a SigningKey
    source = directory / "cards"
    source.mkdir(parents=True)
    (source / "card-rs-0031.bin").write_bytes(random.Random(7).randbytes(size))
    (source / "notice.txt").write_bytes("请携带身份证原件。\n".encode())
    out = directory / "guide-cards-1.tfpkg"
    pack(scan_directory(source), out, kind=PackageKind.CONTENT, name=NAME, version=1, key=key)
    return out


@contextlib.asynccontextmanager
async def stand(
    broker: BrokerSettings, database_url: str, workdir: Path, cuts: int
) -> AsyncIterator[Stand]:
    # Every terminal's download blocks a worker thread, and the proxy's and the server's name
    # lookups need one too: the default pool (6 threads on 2 cores) would starve them.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=64))
    signer = Signer.new()
    http_port = free_port()
    proxy = CuttingProxy(f"http://127.0.0.1:{http_port}", cuts)
    app = web.Application()
    app.router.add_get("/{tail:.*}", proxy.forward)
    runner = web.AppRunner(app)
    await runner.setup()
    proxy_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", proxy_port).start()
    try:
        async with content_control_plane(
            broker,
            database_url,
            workdir,
            signer,
            http_port=http_port,
            public_url=f"http://127.0.0.1:{proxy_port}",
        ) as cp:
            s = Stand(cp, proxy, workdir / "terminals", broker, signer.trusted())
            package = make_package(workdir, signer.key, 1 << 20)
            s.sha256 = await upload_package(cp, package.read_bytes())
            yield s
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running(s: Stand, agents: list[Agent]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(agent.run(stop), name=agent.identity.device_id) for agent in agents
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*(a.connected.wait() for a in agents)), WAIT_S)

        async def registered() -> bool:
            view = await s.cp.get_json("/api/v1/devices?limit=500")
            known = {d["device_id"] for d in view["items"]}
            return {a.identity.device_id for a in agents} <= known

        await s.cp.wait_for(registered, WAIT_S)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT_S)
        for agent in agents:
            agent.close()
        await clear_retained(s.broker, [a.identity.device_id for a in agents])


async def clear_retained(broker: BrokerSettings, device_ids: list[str]) -> None:
    address = mqtt.BrokerAddress(broker.host, broker.port)
    options = mqtt.SessionOptions(client_id=f"clean-{random.getrandbits(32):x}")
    async with mqtt.connect(address, options) as conn:
        for device_id in device_ids:
            for topic in (
                wire.uplink(device_id, Channel.PRESENCE),
                wire.uplink(device_id, Channel.PACKAGES),
                wire.downlink(device_id, Channel.CONTENT),
            ):
                await conn.publish(mqtt.Outgoing(topic, b"", qos=1, retain=True))


def installed(agent: Agent) -> int | None:
    assert agent.packages is not None
    return agent.packages.store.installed_version(NAME)


async def test_ten_percent_failing_installs_pause_the_rollout_at_its_canary(
    broker: BrokerSettings, sqlite_url: str, device_prefix: str, tmp_path: Path
) -> None:
    devices = [f"{device_prefix}-k{n:02d}" for n in range(50)]
    rollout_id = f"{device_prefix}-cards"
    canary, rest = split_waves(rollout_id, tuple(sorted(devices)), (percent(20), percent(100)))
    broken = {*canary[:2], *rest[:3]}  # 5 of 50; 2 of the canary's 10 is over the 10 % threshold
    async with stand(broker, sqlite_url, tmp_path, cuts=0) as s:
        agents = [s.agent(d, broken_disk=d in broken) for d in devices]
        async with running(s, agents):
            await s.post("/api/v1/rollouts", {
                "id": rollout_id, "package": s.sha256, "target": {"device_ids": devices},
                "waves": list(TWO_WAVES), "min_finished": 5,
            })  # fmt: skip
            view = await s.until(rollout_id, "paused")
            assert view["pause_reason"] == "failure_threshold"
            # The pause may come with the first failure judged; installs under way still end.
            path = f"/api/v1/rollouts/{rollout_id}/devices?step=failed"

            async def both_failed() -> dict[str, Any] | None:
                failed = await s.cp.get_json(path)
                return failed if len(failed["items"]) == len(canary[:2]) else None

            failed = await s.cp.wait_for(both_failed, WAIT_S)
            assert sorted(d["device_id"] for d in failed["items"]) == sorted(canary[:2])

            async def healthy_installed() -> bool:
                return all(installed(s.agents[d]) == 1 for d in canary[2:])

            await s.cp.wait_for(healthy_installed, WAIT_S)
            assert all(installed(s.agents[d]) is None for d in canary[:2])
            # Nobody outside the canary was told: no notice, nothing downloaded.
            for device_id in rest:
                assert installed(s.agents[device_id]) is None
                assert s.agents[device_id].packages.report().packages == []  # type: ignore[union-attr]
            assert (await s.rollout(rollout_id))["phase"] == "paused"
            assert all(d["reason"] for d in failed["items"])


async def test_every_wave_completes_though_each_download_is_cut_five_times(
    broker: BrokerSettings, sqlite_url: str, device_prefix: str, tmp_path: Path
) -> None:
    devices = [f"{device_prefix}-k{n:02d}" for n in range(10)]
    rollout_id = f"{device_prefix}-cards"
    async with stand(broker, sqlite_url, tmp_path, cuts=5) as s:
        agents = [s.agent(d) for d in devices]
        async with running(s, agents):
            await s.post("/api/v1/rollouts", {
                "id": rollout_id, "package": s.sha256, "target": {"device_ids": devices},
                "waves": list(TWO_WAVES),
            })  # fmt: skip
            view = await s.until(rollout_id, "completed")
            assert all(installed(a) == 1 for a in agents)
            assert all(s.proxy.cut.get(d) == 5 for d in devices), s.proxy.cut
            # Every cut download resumed where it stopped, never from the start.
            assert sum(r.startswith("bytes=") for r in s.proxy.ranges) >= 5 * len(devices)
            report = s.agents[devices[0]].packages.report()  # type: ignore[union-attr]
            assert report.packages[0].phase is PackagePhase.INSTALLED
            assert (view["wave"], view["wave_count"]) == (2, 2)
