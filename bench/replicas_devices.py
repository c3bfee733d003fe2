"""Simulated terminals that deliver their records the way the edge agent does.

Each device has its own MQTT connection (``control_plane.uplink``, as in ``bench/loadgen.py``, so
that the generator stays light on the shared cores), makes usage records at a fixed offered rate
(open loop), keeps every record until an ``Ack`` lists it, and publishes within the agent's
window and resend policy: ``edge.agent.delivery.InFlight`` (at most ``MAX_IN_FLIGHT`` records
unacknowledged, a record resent ``ack_timeout_s`` after it was published, each further resend
waiting twice as long) and ``pack``/``message`` (consecutive records in one JSON array). A killed
control-plane replica therefore costs these devices what it costs real terminals: delay and
resends.

Workers are processes started on a shared wall-clock instant; each returns a ``Delivery``.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.pool import AsyncResult
from multiprocessing.synchronize import Barrier as BarrierType

from control_plane import uplink
from edge import mqtt
from edge.agent.delivery import ACK_TIMEOUT_S, DeliverySettings, InFlight, message, pack
from edge.agent.outbox import PendingRecord
from edge.protocol import Ack, Channel, PrintJob, decode, encode
from edge.protocol import topics as wire

TICK_S = 0.01
RESEND_CHECK_S = 0.25
"""How often each device looks for overdue records (the agent wakes at the exact deadline; a
quarter second is nothing beside a 30 s ack timeout)."""
READY_TIMEOUT_S = 120.0
"""How long the workers may take to connect all their devices."""
LATE_S = 1.0
"""A record acknowledged later than this after it was made counts as late."""


@dataclass(frozen=True)
class Traffic:
    prefix: str
    """Device ids start with it: each measurement has its own devices."""
    rate: float
    """Records made per second, all workers together."""
    duration_s: float
    devices: int
    records_per_message: int = 1
    ack_timeout_s: float = ACK_TIMEOUT_S
    drain_s: float = 20.0
    """After the last record is made, how long the devices keep resending and waiting for Acks."""
    workers: int = 2


@dataclass
class Delivery:
    """What the devices saw; times in whole seconds from the shared start of the load."""

    made: dict[str, int] = field(default_factory=dict)
    """Device id → the last seq it made (it made 1 to that)."""
    unacked: dict[str, list[int]] = field(default_factory=dict)
    """Device id → seqs still in its outbox at the end (never acknowledged)."""
    latencies_s: list[float] = field(default_factory=list)
    """Made → first Ack, per acknowledged record."""
    acked_by_second: Counter[int] = field(default_factory=Counter)
    """Records acknowledged in each second (by arrival of their Ack)."""
    made_by_second: Counter[int] = field(default_factory=Counter)
    late_by_second: Counter[int] = field(default_factory=Counter)
    """Records made in each second and acknowledged after more than ``LATE_S``."""
    never_by_second: Counter[int] = field(default_factory=Counter)
    """Records made in each second and not acknowledged by the end."""
    worst_by_second: dict[int, float] = field(default_factory=dict)
    """The longest made → Ack among the acknowledged records made in each second."""
    resent: int = 0
    last_ack_s: float = 0.0
    """When the last record was first acknowledged."""
    elapsed_s: float = 0.0
    """From the start to the later of the last record made and the last Ack."""

    @property
    def sent(self) -> int:
        return sum(self.made.values())

    @property
    def acknowledged(self) -> int:
        return len(self.latencies_s)

    def merge(self, other: Delivery) -> None:
        self.made |= other.made
        self.unacked |= other.unacked
        self.latencies_s += other.latencies_s
        self.acked_by_second += other.acked_by_second
        self.made_by_second += other.made_by_second
        self.late_by_second += other.late_by_second
        self.never_by_second += other.never_by_second
        for second, worst in other.worst_by_second.items():
            self.worst_by_second[second] = max(worst, self.worst_by_second.get(second, 0.0))
        self.resent += other.resent
        self.last_ack_s = max(self.last_ack_s, other.last_ack_s)
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)


@dataclass(frozen=True)
class Running:
    start_at: float
    """The wall-clock instant the devices start making records."""
    pending: AsyncResult[list[Delivery]]

    def result(self) -> Delivery:
        """Wait for every worker to finish; their deliveries summed."""
        total = Delivery()
        for part in self.pending.get():
            total.merge(part)
        return total


_all_connected: BarrierType | None = None
"""In a worker: passed once its devices are connected, together with the others and the parent."""


@contextlib.contextmanager
def running(host: str, port: int, traffic: Traffic) -> Iterator[Running]:
    """The devices at work in their processes; leaving the block ends any still running.

    The load starts once every device of every worker is connected (on a loaded machine,
    spawning and connecting take seconds, and a fixed grace would let one worker start late).
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(traffic.workers + 1)
    pool = context.Pool(traffic.workers, initializer=_init_worker, initargs=(barrier,))
    try:
        args = [(host, port, traffic, n) for n in range(traffic.workers)]
        pending = pool.starmap_async(_worker, args)
        try:
            barrier.wait(READY_TIMEOUT_S)
        except threading.BrokenBarrierError:
            pending.get(READY_TIMEOUT_S)  # the worker's own error, if one failed
            raise
        yield Running(time.time(), pending)
    finally:
        pool.terminate()
        pool.join()


def _init_worker(barrier: BarrierType) -> None:
    global _all_connected  # noqa: PLW0603 - one per worker process, set as it starts
    _all_connected = barrier


def _worker(host: str, port: int, traffic: Traffic, worker: int) -> Delivery:
    ids = [f"{traffic.prefix}-{n:05d}" for n in range(worker, traffic.devices, traffic.workers)]
    share = traffic.rate * len(ids) / traffic.devices
    address = mqtt.BrokerAddress(host, port)
    return asyncio.run(_drive(address, ids, share, traffic))


@dataclass
class _Start:
    at: float = 0.0
    """The wall-clock instant this worker started making records."""


class _Device:
    """One terminal: its outbox, its window, its connection."""

    def __init__(self, device_id: str, settings: DeliverySettings, delivery: Delivery) -> None:
        self.id = device_id
        self.topic = wire.uplink(device_id, Channel.USAGE)
        self.conn: uplink.UplinkConnection | None = None
        self.outbox: dict[int, PendingRecord] = {}
        self.made_at: dict[int, tuple[float, int]] = {}
        """seq → (perf_counter when made, second of the load it was made in)."""
        self.next_seq = 1
        self.published_up_to = 0
        self.in_flight = InFlight(settings, time.monotonic)
        self._per_message = settings.records_per_message
        self._delivery = delivery

    def make(self, count: int, now: datetime, second: int) -> None:
        made_at = (time.perf_counter(), second)
        for _ in range(count):
            seq = self.next_seq
            self.next_seq += 1
            payload = encode(PrintJob(seq=seq, at=now, pages=1))
            self.outbox[seq] = PendingRecord(seq, Channel.USAGE, payload)
            self.made_at[seq] = made_at
        self._delivery.made_by_second[second] += count

    def publish_new(self) -> None:
        """Publish records not yet published, as far as the window has room (the agent's rule)."""
        last = min(self.next_seq - 1, self.published_up_to + self.in_flight.room())
        if last <= self.published_up_to:
            return
        seqs = range(self.published_up_to + 1, last + 1)
        self._publish([self.outbox[s] for s in seqs if s in self.outbox])
        self.published_up_to = last

    def resend_due(self) -> None:
        due = self.in_flight.due()
        if not due:
            return
        records = [self.outbox[s] for s in due if s in self.outbox]
        self.in_flight.acknowledge(set(due) - {r.seq for r in records})
        self._publish(records)
        self._delivery.resent += len(records)

    def _publish(self, records: list[PendingRecord]) -> None:
        assert self.conn is not None  # noqa: S101 - connected before the load starts
        for run in pack(records, self._per_message):
            for record in run:
                self.in_flight.sent(record.seq)
            payload = message(run).payload
            self.conn.publish_nowait(mqtt.Outgoing(self.topic, payload, qos=1))

    def acked(self, ack: Ack, since_start_s: float) -> None:
        now = time.perf_counter()
        delivery = self._delivery
        second = int(since_start_s)
        for seq in (*ack.seqs, *ack.rejected):
            if self.outbox.pop(seq, None) is None:
                continue  # acknowledged before (a resend stored again, or its Ack came twice)
            made, made_second = self.made_at.pop(seq)
            latency = now - made
            delivery.latencies_s.append(latency)
            delivery.acked_by_second[second] += 1
            delivery.last_ack_s = since_start_s
            if latency > LATE_S:
                delivery.late_by_second[made_second] += 1
            if latency > delivery.worst_by_second.get(made_second, 0.0):
                delivery.worst_by_second[made_second] = latency
        self.in_flight.acknowledge((*ack.seqs, *ack.rejected))


async def _drive(
    address: mqtt.BrokerAddress, ids: list[str], rate: float, traffic: Traffic
) -> Delivery:
    delivery = Delivery()
    settings = DeliverySettings(
        ack_timeout_s=traffic.ack_timeout_s, records_per_message=traffic.records_per_message
    )
    devices = [_Device(device_id, settings, delivery) for device_id in ids]
    start = _Start()
    async with _connected(address, devices, start) as dirty:
        assert _all_connected is not None  # noqa: S101 - set by the pool's initializer
        await asyncio.to_thread(_all_connected.wait, READY_TIMEOUT_S)
        start.at = time.time()
        last_made_s = await _make_and_send(devices, dirty, rate, traffic, start.at)
        deadline = time.time() + traffic.drain_s
        # Nothing new is made; the devices keep resending what is overdue until all is acked.
        while any(d.outbox for d in devices) and time.time() < deadline:
            _step(devices, dirty, resend=True)
            await asyncio.sleep(RESEND_CHECK_S)
    for device in devices:
        for _, made_second in device.made_at.values():
            delivery.never_by_second[made_second] += 1
    delivery.made = {d.id: d.next_seq - 1 for d in devices}
    delivery.unacked = {d.id: sorted(d.outbox) for d in devices if d.outbox}
    delivery.elapsed_s = max(last_made_s, delivery.last_ack_s)
    return delivery


async def _make_and_send(
    devices: list[_Device],
    dirty: set[_Device],
    rate: float,
    traffic: Traffic,
    start_at: float,
) -> float:
    """Open loop: each tick makes every record due by then, whatever the control plane does."""
    per_message = traffic.records_per_message
    made = 0
    turn = 0
    next_resend_check = 0.0
    while (elapsed := time.time() - start_at) < traffic.duration_s:
        due = int(elapsed * rate) // per_message * per_message - made
        now = datetime.now(UTC)
        for _ in range(due // per_message):
            device = devices[turn % len(devices)]
            turn += 1
            device.make(per_message, now, int(elapsed))
            dirty.add(device)
            made += per_message
        resend = elapsed >= next_resend_check
        if resend:
            next_resend_check = elapsed + RESEND_CHECK_S
        _step(devices, dirty, resend=resend)
        await asyncio.sleep(TICK_S)
    return traffic.duration_s


def _step(devices: list[_Device], dirty: set[_Device], *, resend: bool) -> None:
    """Resend what is overdue (when it is time to look), then publish what has room."""
    if resend:
        for device in devices:
            device.resend_due()
    for device in dirty:
        device.publish_new()
    dirty.clear()


@contextlib.asynccontextmanager
async def _connected(
    address: mqtt.BrokerAddress, devices: list[_Device], start: _Start
) -> AsyncIterator[set[_Device]]:
    """Connect every device and listen for its Acks; yields the set of devices with news."""
    dirty: set[_Device] = set()
    async with asyncio.TaskGroup() as listeners, contextlib.AsyncExitStack() as stack:
        for device in devices:
            options = mqtt.SessionOptions(client_id=device.id, max_inflight=1000)
            device.conn = await stack.enter_async_context(uplink.connect(address, options))
            # Acks are published at QoS 0, so they come at QoS 0 and need no PUBACK.
            await device.conn.subscribe(wire.device_downlink_filter(device.id), qos=0)
            task = listeners.create_task(_listen(device, device.conn, dirty, start))
            stack.callback(task.cancel)
        yield dirty


async def _listen(
    device: _Device, conn: uplink.UplinkConnection, dirty: set[_Device], start: _Start
) -> None:
    async for arrived in conn.arrivals():
        since_start_s = time.time() - start.at
        for incoming in arrived:
            ack = decode(Channel.ACK, incoming.payload)
            if isinstance(ack, Ack):
                device.acked(ack, since_start_s)
        dirty.add(device)  # the window has room again
