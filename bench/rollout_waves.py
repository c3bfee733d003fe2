"""A package through every wave: N simulated terminals take a 20 MB package, canary to 100 %.

A control plane (``termfleet server run`` with a provisioning secret and a content key, SQLite)
holds N kiosks (no site: every hour is a maintenance window) and one uploaded package of
``--mib`` MiB. The terminals run in a process of their own, multiplexed on one MQTT connection:
each reads its retained content notice, downloads the package from the control plane at its
signed URL (HTTP, a fresh connection per download, at most ``DOWNLOADERS`` at a time), checks
the sha256 of every byte, reports ``staged`` on its ``packages`` channel, and ``installed`` once
its notice allows the install. They keep the package in memory only: what is measured is the
control plane (its CPU per device over the whole rollout) and the wall time per wave, not the
terminals' disks.

    .venv/bin/python bench/rollout_waves.py [--devices N] [--mib M]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.content_serving import make_package, upload  # noqa: E402 - needs the repo root first
from bench.rollout_fanout import HOST, add_devices, post_rollout  # noqa: E402
from bench.stand import content_stand  # noqa: E402
from control_plane import uplink  # noqa: E402
from edge import mqtt  # noqa: E402
from edge.protocol import (  # noqa: E402
    Channel,
    ContentNotice,
    InstallWhen,
    PackagePhase,
    PackageReport,
    PackageState,
    PackageTarget,
    decode,
    encode,
)
from edge.protocol import topics as wire  # noqa: E402

DOWNLOADERS = 16
CHUNK = 1 << 20
TIMEOUT_S = 1800
NOTICES = f"{wire.ROOT}/{wire.Direction.DOWN.value}/+/{Channel.CONTENT.value}"


class Terminals:
    """Every simulated terminal's state, driven by the notices that arrive."""

    def __init__(self, conn: uplink.UplinkConnection, count: int) -> None:
        self.conn = conn
        self.count = count
        self.staged: set[str] = set()
        self.installed: dict[str, float] = {}
        self.downloading: set[str] = set()
        self.pool = ThreadPoolExecutor(DOWNLOADERS)
        self.loop = asyncio.get_running_loop()
        self.bytes = 0
        self.lock = threading.Lock()
        self.done = asyncio.Event()

    def report(self, device_id: str, state: PackageState) -> None:
        message = mqtt.Outgoing(
            wire.uplink(device_id, Channel.PACKAGES),
            encode(PackageReport(packages=[state])),
            1,
            retain=True,
        )
        self.conn.publish_nowait(message)

    def notice(self, device_id: str, notice: ContentNotice) -> None:
        for target in notice.targets:
            if device_id in self.installed:
                continue
            allowed = target.install in {InstallWhen.NOW, InstallWhen.WHEN_IDLE}
            if device_id in self.staged and allowed:
                self.installed[device_id] = time.monotonic()
                self.report(device_id, _state(target, PackagePhase.INSTALLED))
                if len(self.installed) == self.count:
                    self.done.set()
            elif device_id not in self.staged and device_id not in self.downloading:
                self.downloading.add(device_id)
                future = self.pool.submit(self.fetch, target.artifact.url, target.artifact.sha256)
                future.add_done_callback(
                    functools.partial(self._fetched, device_id, notice, target)
                )

    def fetch(self, url: str, sha256: str) -> None:
        digest = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=120) as response:  # noqa: S310 - signed URL
            while chunk := response.read(CHUNK):
                digest.update(chunk)
                with self.lock:
                    self.bytes += len(chunk)
        if digest.hexdigest() != sha256:
            msg = f"{url}: the download's sha256 is not the notice's"
            raise RuntimeError(msg)

    def _fetched(
        self, device_id: str, notice: ContentNotice, target: PackageTarget, done: Future[None]
    ) -> None:
        """In a download thread: hand the outcome to the event loop."""
        self.loop.call_soon_threadsafe(self.fetched, device_id, notice, target, done.exception())

    def fetched(
        self,
        device_id: str,
        notice: ContentNotice,
        target: PackageTarget,
        error: BaseException | None,
    ) -> None:
        self.downloading.discard(device_id)
        if error is not None:
            raise error
        self.staged.add(device_id)
        self.report(device_id, _state(target, PackagePhase.STAGED))
        self.notice(device_id, notice)  # it may already allow the install


def _state(target: PackageTarget, phase: PackagePhase) -> PackageState:
    installed = target.version if phase is PackagePhase.INSTALLED else None
    return PackageState(
        name=target.name,
        target=target.version,
        rollout_id=target.rollout_id,
        phase=phase,
        installed=installed,
    )


async def terminals_main(port: int, count: int, ready: Path) -> dict[str, float]:
    options = mqtt.SessionOptions(client_id="bench-terminals", manual_ack=True, max_inflight=1000)
    async with uplink.connect(mqtt.BrokerAddress(HOST, port), options) as conn:
        fleet = Terminals(conn, count)
        await conn.subscribe(NOTICES, qos=1)
        ready.touch()  # noqa: ASYNC240 - once, before anything is measured

        async def consume() -> None:
            async for batch in conn.arrivals():
                for message in batch:
                    conn.ack(message)
                    if message.payload:
                        notice = decode(Channel.CONTENT, message.payload)
                        if isinstance(notice, ContentNotice):
                            fleet.notice(wire.parse(message.topic).subject, notice)

        consuming = asyncio.create_task(consume())
        await asyncio.wait_for(fleet.done.wait(), TIMEOUT_S)
        consuming.cancel()
        fleet.pool.shutdown()
        times = sorted(fleet.installed.values())
        return {
            "first": times[0],
            "last": times[-1],
            "bytes": fleet.bytes,
            "cpu_s": time.process_time(),
        }


async def through_waves(workdir: Path, count: int, size: int) -> dict[str, float]:
    package, public_key = make_package(workdir, size)
    database_url = f"sqlite://{workdir / 'cp.sqlite3'}"
    await add_devices(database_url, count)
    with content_stand(workdir, public_key, database_url=database_url,
                       client_id="bench-waves") as stand:  # fmt: skip
        api, token = stand.api, stand.token
        sha256 = upload(api, package, token)
        ready = workdir / "terminals.ready"
        terminals = subprocess.Popen(  # noqa: S603, ASYNC220 - this module, fixed arguments; started once
            [sys.executable, "-m", "bench.rollout_waves", "terminals", str(stand.broker.port),
             str(count), str(ready)],
            stdout=subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        while not ready.exists() and terminals.poll() is None:  # noqa: ASYNC110 - a file
            await asyncio.sleep(0.05)
        process = psutil.Process(stand.server.pid)
        cpu_before = sum(process.cpu_times()[:2])
        t0 = time.monotonic()
        await asyncio.to_thread(post_rollout_all_waves, api, token, sha256)
        out, _ = await asyncio.to_thread(terminals.communicate, timeout=TIMEOUT_S)
        view = await completed(api, token)
        wall = time.monotonic() - t0
        cpu_s = sum(process.cpu_times()[:2]) - cpu_before
    result = json.loads(out)
    return {"wall_s": wall, "cpu_s": cpu_s, "bytes": result["bytes"], "phase": view["phase"],
            "terminal_cpu_s": result["cpu_s"]}  # fmt: skip


def post_rollout_all_waves(api: str, token: str, sha256: str) -> None:
    post_rollout(api, token, sha256, waves=["1", "10", "50", "100"])


async def completed(api: str, token: str) -> dict[str, object]:
    """The rollout once the control plane has taken the last report (or after a minute)."""
    deadline = time.monotonic() + 60
    while True:
        view = await asyncio.to_thread(rollout_view, api, token)
        if view["phase"] == "completed" or time.monotonic() > deadline:
            return view
        await asyncio.sleep(0.1)


def rollout_view(api: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 - a URL this bench made
        f"{api}/api/v1/rollouts", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
        items: list[dict[str, object]] = json.load(response)["items"]
    return items[0]


def run(*, quick: bool = False, devices: int | None = None, mib: int = 20) -> str:
    count = devices or (200 if quick else 1000)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(through_waves(Path(tmp), count, mib << 20))
    gb = result["bytes"] / 1e9
    return "\n".join(
        [
            "## A package through every wave",
            "",
            (
                f"{count:,} simulated terminals take a {mib} MiB package through waves of 1, 10, "
                "50 and 100 %, each downloading it from the control plane (16 at a time), checking "
                "its sha256 and reporting staged, then installed once allowed (every hour is a "
                "window here). The control plane's CPU is over the whole rollout, downloads served "
                "included."
            ),
            "",
            (
                "| terminals | wall, create → completed | served | control plane CPU"
                " | per device | final phase |"
            ),
            "|---:|---:|---:|---:|---:|---|",
            (
                f"| {count:,} | {result['wall_s']:.1f} s | {gb:.1f} GB | {result['cpu_s']:.1f} s "
                f"| {result['cpu_s'] / count * 1e3:.1f} ms | {result['phase']} |"
            ),
            "",
        ]
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "terminals":
        port, count, ready = int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
        print(json.dumps(asyncio.run(terminals_main(port, count, ready))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=None)
    parser.add_argument("--mib", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(run(quick=args.quick, devices=args.devices, mib=args.mib))


if __name__ == "__main__":
    main()
