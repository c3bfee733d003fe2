"""An open-loop load generator: worker processes, each holding many device connections.

Each simulated device has its own MQTT connection, publishes its records (QoS 1) on its own
uplink topic and listens for its ``Ack`` on its own downlink, as an agent does. The workers
publish at a fixed rate whatever the consumer does (open loop), one record per message (what a
terminal sends live) or several (what it sends when it drains a backlog), and time every record
from the moment it is handed to the client to the arrival of the ``Ack`` that lists it, which
the control plane sends only after its commit.

Workers are separate processes, started on a shared wall-clock instant so their rates add up.
The simulated terminals speak through the ingest's own MQTT connection (``control_plane.uplink``),
not paho as a real agent does: the generator shares two cores with the broker and the control
plane, and paho's ~100 µs of CPU per message would make it the largest consumer on the machine
at 10,000 records/s, so the control plane's latency would measure the generator's queueing. The
broker sees the same QoS 1 PUBLISHes either way; ``bench/agent.py`` measures the agent's paho.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psutil

from control_plane import uplink
from edge import mqtt
from edge.protocol import Ack, Channel, PrintJob, decode, encode_records
from edge.protocol import topics as wire

TICK_S = 0.01
CONNECT_GRACE_S = 3.0
"""Workers start publishing this long after they are launched, all at the same instant."""
ACK_WAIT_S = 20.0
"""After the run, how long to wait for the last acknowledgements before counting the rest lost."""


@dataclass(frozen=True)
class Load:
    rate: float
    """Records per second, all workers together."""
    duration_s: float
    devices: int
    records_per_message: int = 1
    want_acks: bool = True
    workers: int = 2


@dataclass
class LoadResult:
    sent: int = 0
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0
    """From the first publish to the later of the last publish and the last Ack: a consumer
    that falls behind and catches up after the load ends is not credited with the offered
    rate."""
    idle_share: float | None = None
    """How much of the machine's CPU (all cores) stood idle while the load was offered: near 0,
    the generator, broker and consumer together saturate it, and latencies include waiting
    for a core."""

    @property
    def acknowledged(self) -> int:
        return len(self.latencies_s)


def run_load(broker_host: str, broker_port: int, load: Load) -> LoadResult:
    """Run ``load`` against a broker from ``load.workers`` processes; returns their sum."""
    start_at = time.time() + CONNECT_GRACE_S
    idle: list[float] = []
    watch = threading.Thread(target=_idle_share, args=(start_at, load.duration_s, idle))
    watch.start()
    context = multiprocessing.get_context("spawn")
    with context.Pool(load.workers) as pool:
        parts = pool.starmap(
            _worker,
            [(broker_host, broker_port, load, n, start_at) for n in range(load.workers)],
        )
    watch.join()
    total = LoadResult(idle_share=idle[0] if idle else None)
    for part in parts:
        total.sent += part.sent
        total.latencies_s += part.latencies_s
        total.elapsed_s = max(total.elapsed_s, part.elapsed_s)
    return total


def _idle_share(start_at: float, duration_s: float, into: list[float]) -> None:
    """The machine's idle share of CPU time from ``start_at`` for ``duration_s``."""
    time.sleep(max(0.0, start_at - time.time()))
    before = psutil.cpu_times()
    time.sleep(duration_s)
    after = psutil.cpu_times()
    total = sum(after) - sum(before)
    if total > 0:
        into.append((after.idle - before.idle) / total)


def _worker(host: str, port: int, load: Load, worker: int, start_at: float) -> LoadResult:
    devices = [f"bench-{worker}-{n:05d}" for n in range(worker, load.devices, load.workers)]
    share = load.rate * len(devices) / load.devices
    return asyncio.run(_drive(mqtt.BrokerAddress(host, port), devices, share, load, start_at))


class _Timer:
    """When each record was handed to the client, and how long until its Ack came."""

    def __init__(self) -> None:
        self.published: dict[tuple[str, int], float] = {}
        self.latencies: list[float] = []
        self.last_ack_at = 0.0

    def acked(self, device: str, ack: Ack) -> None:
        now = time.perf_counter()
        for seq in ack.seqs:
            sent_at = self.published.pop((device, seq), None)
            if sent_at is not None:
                self.latencies.append(now - sent_at)
                self.last_ack_at = now


async def _drive(
    address: mqtt.BrokerAddress, devices: list[str], rate: float, load: Load, start_at: float
) -> LoadResult:
    timer = _Timer()
    async with _connections(address, devices, timer, want_acks=load.want_acks) as conns:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        started = time.perf_counter()
        sent = await _publish_at_rate(conns, devices, rate, load, timer)
        published_s = time.perf_counter() - started
        deadline = time.perf_counter() + ACK_WAIT_S
        # Polls: the last acks arrive within a commit or two, or the records are lost.
        while load.want_acks and timer.published and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    elapsed = max(published_s, timer.last_ack_at - started)
    return LoadResult(sent, timer.latencies, elapsed)


@contextlib.asynccontextmanager
async def _connections(
    address: mqtt.BrokerAddress, devices: list[str], timer: _Timer, *, want_acks: bool
) -> AsyncIterator[list[uplink.UplinkConnection]]:
    """One MQTT connection per device, each collecting its device's Acks."""
    async with asyncio.TaskGroup() as collectors, contextlib.AsyncExitStack() as stack:
        conns = []
        for device in devices:
            options = mqtt.SessionOptions(client_id=device, max_inflight=1000)
            conn = await stack.enter_async_context(uplink.connect(address, options))
            if want_acks:
                # Acks are published at QoS 0, so they come at QoS 0 and need no PUBACK.
                await conn.subscribe(wire.device_downlink_filter(device), qos=0)
                stack.callback(collectors.create_task(_collect(device, conn, timer)).cancel)
            conns.append(conn)
        yield conns


async def _collect(device: str, conn: uplink.UplinkConnection, timer: _Timer) -> None:
    async for arrived in conn.arrivals():
        for message in arrived:
            ack = decode(Channel.ACK, message.payload)
            if isinstance(ack, Ack):
                timer.acked(device, ack)


def _messages(devices: list[str], records_per_message: int) -> Iterator[tuple[int, str, list[int]]]:
    """(device index, device, seqs) of the next message, round-robin over the devices."""
    next_seq = [1] * len(devices)
    while True:
        for index, device in enumerate(devices):
            first = next_seq[index]
            next_seq[index] = first + records_per_message
            yield index, device, list(range(first, first + records_per_message))


async def _publish_at_rate(
    conns: list[uplink.UplinkConnection],
    devices: list[str],
    rate: float,
    load: Load,
    timer: _Timer,
) -> int:
    """Open loop: each tick hands the client every message due by then, whatever the consumer.

    Returns how many records were sent.
    """
    per_message = load.records_per_message
    topics = [wire.uplink(d, Channel.USAGE) for d in devices]
    upcoming = _messages(devices, per_message)
    started = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - started) < load.duration_s:
        due = int(elapsed * rate) // per_message * per_message - sent
        now = datetime.now(UTC)
        for _ in range(due // per_message):
            index, device, seqs = next(upcoming)
            payload = encode_records([PrintJob(seq=s, at=now, pages=1) for s in seqs])
            handed_at = time.perf_counter()
            if load.want_acks:
                for seq in seqs:
                    timer.published[(device, seq)] = handed_at
            conns[index].publish_nowait(mqtt.Outgoing(topics[index], payload, qos=1))
            sent += per_message
        await asyncio.sleep(TICK_S)
    return sent
