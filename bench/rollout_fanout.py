"""Notifying a fleet: from ``POST /api/v1/rollouts`` to every terminal's retained content notice.

A control plane (``termfleet server run`` with a provisioning secret and a content key, SQLite)
holds N kiosks and one uploaded package. A subscriber on every device's ``content`` downlink
(``termfleet/v1/down/+/content``, QoS 1, in this process) notes when each device's notice
arrives. The clock starts just before the rollout is created (one wave of 100 %, so every
device is notified at once) and each device's latency is its notice's arrival. The reference:
this process publishing the same N notices itself (retained, QoS 1, with our MQTT client, as
fast as the broker acknowledges): what the broker delivers here at most.

    .venv/bin/python bench/rollout_fanout.py [--devices N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.content_serving import make_package, upload  # noqa: E402 - needs the repo root first
from bench.stand import content_stand  # noqa: E402
from control_plane import uplink  # noqa: E402
from control_plane.db import database  # noqa: E402
from control_plane.db.models import Device  # noqa: E402
from control_plane.services.broker import BrokerSettings, start_broker  # noqa: E402
from control_plane.services.processes import free_port  # noqa: E402
from edge import mqtt  # noqa: E402
from edge.protocol import Artifact, Channel, ContentNotice, PackageTarget, encode  # noqa: E402
from edge.protocol import topics as wire  # noqa: E402

HOST = "127.0.0.1"
TARGET_P99_S = 1.0
NOTICE_FILTER = f"{wire.ROOT}/{wire.Direction.DOWN.value}/+/{Channel.CONTENT.value}"
TIMEOUT_S = 300


def device_ids(count: int) -> list[str]:
    return [f"kiosk-{n:06d}" for n in range(count)]


async def add_devices(database_url: str, count: int) -> None:
    async with database(database_url):
        await Device.bulk_create(
            [Device(device_id=d, kind="kiosk") for d in device_ids(count)], batch_size=1000
        )


async def arrivals(port: int, count: int, started: asyncio.Event, client: str) -> dict[str, float]:
    """Arrival time (monotonic) of the first notice of each of ``count`` devices."""
    seen: dict[str, float] = {}
    options = mqtt.SessionOptions(client_id=client, manual_ack=True, max_inflight=1000)
    async with uplink.connect(mqtt.BrokerAddress(HOST, port), options) as conn:
        await conn.subscribe(NOTICE_FILTER, qos=1)
        started.set()
        async for batch in conn.arrivals():
            now = time.monotonic()
            for message in batch:
                conn.ack(message)
                seen.setdefault(wire.parse(message.topic).subject, now)
            if len(seen) >= count:
                return seen
    return seen


def post_rollout(api: str, token: str, sha256: str, waves: list[str] | None = None) -> None:
    body = {"package": sha256, "target": {"kinds": ["kiosk"]}, "waves": waves or ["100"]}
    request = urllib.request.Request(  # noqa: S310 - a URL this bench made
        f"{api}/api/v1/rollouts",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
        response.read()


async def through_control_plane(workdir: Path, count: int) -> dict[str, float]:
    package, public_key = make_package(workdir, 1 << 20)
    database_url = f"sqlite://{workdir / 'cp.sqlite3'}"
    await add_devices(database_url, count)
    with content_stand(workdir, public_key, database_url=database_url,
                       client_id="bench-rollouts") as stand:  # fmt: skip
        sha256 = upload(stand.api, package, stand.token)
        process = psutil.Process(stand.server.pid)
        started = asyncio.Event()
        waiting = asyncio.create_task(arrivals(stand.broker.port, count, started, "bench-watch"))
        await started.wait()
        cpu_before = sum(process.cpu_times()[:2])
        t0 = time.monotonic()
        await asyncio.to_thread(post_rollout, stand.api, stand.token, sha256)
        posted = time.monotonic() - t0
        seen = await asyncio.wait_for(waiting, TIMEOUT_S)
        cpu_s = sum(process.cpu_times()[:2]) - cpu_before
    return summary(seen, t0, count) | {"post_s": posted, "cpu_s": cpu_s}


async def reference(workdir: Path, count: int) -> dict[str, float]:
    """The same number of notices, published by this process straight to the broker."""
    broker = BrokerSettings(workdir / "broker-ref", free_port())
    broker_process = start_broker(broker)
    try:
        started = asyncio.Event()
        waiting = asyncio.create_task(arrivals(broker.port, count, started, "bench-ref-watch"))
        await started.wait()
        messages = [
            mqtt.Outgoing(wire.downlink(d, Channel.CONTENT), encode(_notice(d)), 1, retain=True)
            for d in device_ids(count)
        ]
        options = mqtt.SessionOptions(client_id="bench-ref-publisher")
        async with uplink.connect(mqtt.BrokerAddress(HOST, broker.port), options) as conn:
            t0 = time.monotonic()
            for message in messages:
                conn.publish_nowait(message)
            seen = await asyncio.wait_for(waiting, TIMEOUT_S)
    finally:
        broker_process.stop()
    return summary(seen, t0, count)


def _notice(device_id: str) -> ContentNotice:
    """A notice of the size the control plane sends: one target with a signed URL."""
    url = f"http://{HOST}:8080/content/v1/packages/{'a' * 64}.tfpkg?device={device_id}"
    artifact = Artifact(url=f"{url}&expires=1790000000&sig={'b' * 32}", sha256="a" * 64,
                        size=1 << 20, signature="c" * 88, key_id="d" * 16)  # fmt: skip
    return ContentNotice(
        targets=[PackageTarget(name="bench", version=1, artifact=artifact, rollout_id="ref")]
    )


def summary(seen: dict[str, float], t0: float, count: int) -> dict[str, float]:
    latencies = sorted(arrived - t0 for arrived in seen.values())
    if len(latencies) < count:
        msg = f"only {len(latencies)} of {count} devices got a notice"
        raise RuntimeError(msg)
    return {
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[int(len(latencies) * 0.99) - 1],
        "max_s": latencies[-1],
    }


def run(*, quick: bool = False, devices: int | None = None) -> str:
    count = devices or (2_000 if quick else 10_000)
    with tempfile.TemporaryDirectory() as tmp:
        ours = asyncio.run(through_control_plane(Path(tmp), count))
        ref = asyncio.run(reference(Path(tmp), count))
    verdict = "meets" if ours["p99_s"] <= TARGET_P99_S else "misses"
    return "\n".join(
        [
            "## Notifying a fleet of a rollout",
            "",
            (
                f"{count:,} kiosks in one wave of 100 %: from `POST /api/v1/rollouts` to each "
                "device's retained content notice arriving at a subscriber on every device's "
                "downlink. The reference publishes the same number of notices straight to the "
                f"broker. Target p99 ≤ {TARGET_P99_S:.0f} s: this run {verdict} it."
            ),
            "",
            "| path | p50 | p99 | max | POST answered | control plane CPU |",
            "|---|---:|---:|---:|---:|---:|",
            _row("control plane", ours, f"{ours['post_s']:.2f} s", _cpu(ours["cpu_s"], count)),
            _row("broker reference", ref, "", ""),
            "",
            f"p99 ratio, control plane / reference: {ours['p99_s'] / ref['p99_s']:.1f}x.",
            "",
        ]
    )


def _row(name: str, result: dict[str, float], posted: str, cpu: str) -> str:
    times = " | ".join(f"{result[key]:.2f} s" for key in ("p50_s", "p99_s", "max_s"))
    return f"| {name} | {times} | {posted} | {cpu} |"


def _cpu(cpu_s: float, count: int) -> str:
    return f"{cpu_s:.2f} s ({cpu_s / count * 1e6:.0f} µs/device)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(run(quick=args.quick, devices=args.devices))


if __name__ == "__main__":
    main()
