"""Records from the agent's outbox through a real Mosquitto to a fake control plane and back.

The fake control plane "commits" into a dict keyed by seq and acknowledges after that, and can
drop or hold its acks; every test ends with exactly the recorded seqs committed and the outbox
empty. The agent-only cases at the end (refused records, the near-full alarm) need no broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from control_plane.reviews import chain_check
from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import ManagedProcess, free_port
from edge import mqtt
from edge.agent.backoff import Backoff
from edge.agent.delivery import DeliverySettings
from edge.agent.outbox import Outbox
from edge.agent.runner import Agent, AgentIdentity, AgentTiming, RecordError
from edge.agent.sessions import MemorySessionCounter
from edge.protocol import (
    Ack,
    Channel,
    DeviceEvent,
    DeviceKind,
    EventType,
    Heartbeat,
    PrintJob,
    Rating,
    Record,
    Review,
    Severity,
    Transaction,
    decode,
    decode_records,
    encode,
)
from edge.protocol import topics as wire
from edge.protocol.review_chain import GENESIS, review_hash
from edge.simulator.health import SimulatedHealth

log = logging.getLogger(__name__)

WAIT_S = 20.0
RECORD_CHANNELS = (Channel.USAGE, Channel.REVIEW, Channel.EVENT)


class FakeControlPlane:
    """Commits records into ``committed`` (by seq), then acks them, as the real ingest would."""

    def __init__(self, broker: BrokerSettings, device_id: str) -> None:
        self._address = mqtt.BrokerAddress(broker.host, broker.port)
        self.device_id = device_id
        self.committed: dict[int, Record] = {}
        self.deliveries: list[int] = []
        """Every seq received, duplicates included."""
        self.backlog_reported: int | None = None
        self.drop_acks = False
        self.hold_acks = False
        self.held: list[int] = []
        self._to_ack: list[int] = []
        self._changed = asyncio.Condition()
        self._conn: mqtt.Connection | None = None
        self._acking: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeControlPlane]:
        options = mqtt.SessionOptions(client_id=f"fake-cp-{self.device_id}")
        async with mqtt.connect(self._address, options) as conn:
            self._conn = conn
            topics = [wire.uplink(self.device_id, c) for c in (*RECORD_CHANNELS, Channel.HEALTH)]
            await conn.subscribe(*topics, qos=1)
            receiving = asyncio.create_task(self._receive(conn), name="fake-cp")
            try:
                yield self
            finally:
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await receiving
                if self._acking is not None:
                    await self._acking

    async def _receive(self, conn: mqtt.Connection) -> None:
        async for incoming in conn.messages():
            channel = wire.parse(incoming.topic).channel
            async with self._changed:
                if channel is Channel.HEALTH:
                    heartbeat = decode(channel, incoming.payload)
                    assert isinstance(heartbeat, Heartbeat)
                    if heartbeat.outbox_backlog is not None:
                        self.backlog_reported = heartbeat.outbox_backlog
                else:
                    # One record, or a backlog's array of them.
                    for item in decode_records(channel, incoming.payload):
                        assert item.payload is not None, item.error
                        seq = item.payload.seq
                        self.deliveries.append(seq)
                        self.committed.setdefault(seq, item.payload)
                        self._ack_later(seq)
                self._changed.notify_all()

    def _ack_later(self, seq: int) -> None:
        if self.drop_acks:
            return
        if self.hold_acks:
            self.held.append(seq)
            return
        self._to_ack.append(seq)
        if self._acking is None or self._acking.done():
            self._acking = asyncio.create_task(self._send_acks(), name="fake-cp-acks")

    async def _send_acks(self) -> None:
        # Whatever arrived while the previous ack was on its way goes out in one Ack, the way
        # the real ingest acknowledges a committed batch.
        while self._to_ack:
            seqs, self._to_ack = self._to_ack, []
            await self.ack(seqs)

    async def ack(self, seqs: list[int]) -> None:
        assert self._conn is not None
        ack = Ack(seqs=tuple(seqs), committed_at=datetime.now(UTC))
        topic = wire.downlink(self.device_id, Channel.ACK)
        await self._conn.publish(mqtt.Outgoing(topic, encode(ack), qos=1))

    async def release_held(self) -> None:
        self.hold_acks = False
        held, self.held = self.held, []
        await self.ack(held)

    async def until(self, condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(condition), timeout_s)


def sample_records(n: int) -> list[Record]:
    """A citizen's morning: transactions, print jobs, reviews, now and then a device event."""
    kinds: list[Callable[[int], Record]] = [
        lambda i: Transaction(department="人社", item_code=f"1144010000{i:04d}", duration_s=42.0),
        lambda i: PrintJob(pages=1 + i % 3),
        lambda i: Review(case_number=f"44011720261122{i:05d}", rating=Rating.SATISFIED),
        lambda _i: DeviceEvent(type=EventType.AGENT_STARTED),
    ]
    return [kinds[i % len(kinds)](i) for i in range(n)]


def make_agent(
    device_id: str, broker: BrokerSettings | tuple[str, int], outbox: Outbox, ack_timeout_s: float
) -> Agent:
    host, port = (broker.host, broker.port) if isinstance(broker, BrokerSettings) else broker
    return Agent(
        AgentIdentity(device_id, DeviceKind.KIOSK),
        mqtt.BrokerAddress(host, port),
        SimulatedHealth(DeviceKind.KIOSK, random.Random(1)),
        MemorySessionCounter(100),
        timing=AgentTiming(heartbeat_interval_s=0.2, keepalive_s=5),
        # Retries come fast so the test does not wait on jitter; the policy itself is unit-tested.
        backoff=Backoff(initial_s=0.1, max_s=0.3),
        outbox=outbox,
        delivery=DeliverySettings(max_in_flight=50, ack_timeout_s=ack_timeout_s),
    )


@contextlib.asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop), name="agent")
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)


async def record_all(agent: Agent, records: list[Record]) -> list[int]:
    return [await agent.record(r) for r in records]


def assert_exactly(committed: dict[int, Record], seqs: list[int], records: list[Record]) -> None:
    assert sorted(committed) == seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    for seq, sent in zip(seqs, records, strict=True):
        stored = committed[seq]
        assert type(stored) is type(sent)
        assert stored.seq == seq
        assert stored.at is not None


@pytest.fixture
async def device_id(broker: BrokerSettings, device_prefix: str) -> AsyncIterator[str]:
    """A device on the shared broker whose retained presence is cleared afterwards.

    Other tests' control planes read every retained presence on the broker; a kiosk left
    behind would show up in their fleet counts.
    """
    device_id = f"{device_prefix}-kiosk"
    yield device_id
    address = mqtt.BrokerAddress(broker.host, broker.port)
    options = mqtt.SessionOptions(client_id=f"cleanup-{device_id}")
    async with mqtt.connect(address, options) as conn:
        topic = wire.uplink(device_id, Channel.PRESENCE)
        await conn.publish(mqtt.Outgoing(topic, b"", qos=1, retain=True))


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "agent" / "outbox.sqlite3")
    yield box
    box.close()


async def test_records_recorded_while_connected_all_arrive_and_the_outbox_empties(
    broker: BrokerSettings, device_id: str, outbox: Outbox
) -> None:
    agent = make_agent(device_id, broker, outbox, ack_timeout_s=30)
    records = sample_records(200)
    async with FakeControlPlane(broker, device_id).running() as cp, running(agent):
        await asyncio.wait_for(agent.connected.wait(), WAIT_S)
        started = time.perf_counter()
        seqs = await record_all(agent, records)
        await asyncio.wait_for(agent.sender.drained.wait(), WAIT_S)
        elapsed = time.perf_counter() - started

    log.info("200 records recorded, delivered and acked in %.3fs", elapsed)
    assert_exactly(cp.committed, seqs, records)
    assert sorted(cp.deliveries) == seqs, "a 30 s ack timeout never fires here"
    assert (outbox.backlog(), agent.sender.resent) == (0, 0)


async def test_records_recorded_while_the_broker_is_unreachable_arrive_once_it_is_up(
    tmp_path: Path, device_prefix: str, outbox: Outbox
) -> None:
    device_id = f"{device_prefix}-station"
    settings = BrokerSettings(workdir=tmp_path / "broker", port=free_port())
    agent = make_agent(device_id, settings, outbox, ack_timeout_s=1)
    records = sample_records(120)
    broker: ManagedProcess | None = None
    try:
        async with running(agent) as task:
            seqs = await record_all(agent, records[:60])
            assert not agent.connected.is_set()
            assert outbox.backlog() == 60
            broker = await asyncio.to_thread(start_broker, settings)
            async with FakeControlPlane(settings, device_id).running() as cp:
                seqs += await record_all(agent, records[60:])
                await asyncio.wait_for(agent.sender.drained.wait(), WAIT_S)
                assert not task.done()
    finally:
        if broker is not None:
            broker.stop()

    # The agent may have connected before the fake control plane subscribed; what the broker
    # then dropped was published again after the ack timeout.
    assert_exactly(cp.committed, seqs, records)
    assert outbox.backlog() == 0


async def test_without_acks_the_agent_resends_and_duplicates_are_acked_away(
    broker: BrokerSettings, device_id: str, outbox: Outbox
) -> None:
    agent = make_agent(device_id, broker, outbox, ack_timeout_s=0.3)
    records = sample_records(20)
    async with FakeControlPlane(broker, device_id).running() as cp, running(agent):
        cp.drop_acks = True
        await asyncio.wait_for(agent.connected.wait(), WAIT_S)
        seqs = await record_all(agent, records)
        await cp.until(lambda: all(cp.deliveries.count(s) >= 2 for s in seqs))
        await cp.until(lambda: cp.backlog_reported == 20)
        assert outbox.backlog() == 20

        cp.drop_acks = False
        await asyncio.wait_for(agent.sender.drained.wait(), WAIT_S)
        await cp.until(lambda: cp.backlog_reported == 0)

    assert_exactly(cp.committed, seqs, records)
    assert len(cp.deliveries) > len(seqs)
    assert agent.sender.resent >= len(seqs)


async def test_late_acks_after_resends_still_empty_the_outbox(
    broker: BrokerSettings, device_id: str, outbox: Outbox
) -> None:
    agent = make_agent(device_id, broker, outbox, ack_timeout_s=0.3)
    records = sample_records(30)
    async with FakeControlPlane(broker, device_id).running() as cp, running(agent):
        cp.hold_acks = True
        await asyncio.wait_for(agent.connected.wait(), WAIT_S)
        seqs = await record_all(agent, records)
        await cp.until(lambda: all(cp.deliveries.count(s) >= 2 for s in seqs))

        await cp.release_held()  # one late Ack, listing each seq as often as it arrived
        await asyncio.wait_for(agent.sender.drained.wait(), WAIT_S)

    assert_exactly(cp.committed, seqs, records)
    assert outbox.backlog() == 0


# The agent alone: no broker needed, since recording works disconnected.


def offline_agent(outbox: Outbox) -> Agent:
    return make_agent("kiosk-offline-01", ("127.0.0.1", 9), outbox, ack_timeout_s=30)


async def test_record_assigns_the_seq_and_device_time_and_stores_before_returning(
    outbox: Outbox,
) -> None:
    agent = offline_agent(outbox)
    seq = await agent.record(Review(case_number="4401172026112200001", rating=Rating.BASIC))

    [stored] = outbox.pending()
    review = decode(Channel.REVIEW, stored.payload)
    assert isinstance(review, Review)
    assert (stored.seq, stored.channel, review.seq) == (seq, Channel.REVIEW, seq)
    assert review.at is not None
    assert review.at.tzinfo is not None


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (Heartbeat(), "not a record"),
        (Transaction(department="公安"), "item_code"),
        (DeviceEvent(message="x" * 300_000, type=EventType.TAMPER), "exceeds"),
    ],
    ids=["not-a-record", "missing-required-field", "too-large"],
)
async def test_records_the_control_plane_would_refuse_are_refused_and_use_no_seq(
    outbox: Outbox, payload: Record, why: str
) -> None:
    agent = offline_agent(outbox)
    first = await agent.record(PrintJob(pages=1))

    with pytest.raises(RecordError, match=why):
        await agent.record(payload)

    assert await agent.record(PrintJob(pages=2)) == first + 1
    assert outbox.backlog() == 2


async def test_the_near_full_alarm_is_recorded_once_per_crossing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_bytes=400_000)
    agent = offline_agent(outbox)
    filler = Transaction(item_code="11440100000001", session_id="s" * 3000)

    def alarms() -> list[DeviceEvent]:
        found = [decode(r.channel, r.payload) for r in outbox.pending(limit=10_000)]
        return [e for e in found if isinstance(e, DeviceEvent)]

    try:
        seqs: list[int] = []
        while not outbox.near_full():
            seqs.append(await agent.record(filler))
        [alarm] = alarms()
        assert (alarm.type, alarm.severity) == (EventType.OUTBOX_NEAR_FULL, Severity.WARNING)
        assert alarm.details["max_bytes"] == "400000"
        assert int(alarm.details["used_bytes"]) >= 320_000
        assert int(alarm.details["backlog"]) == len(seqs)

        seqs += [await agent.record(filler) for _ in range(20)]
        assert len(alarms()) == 1, "still near full: no second alarm"

        outbox.acknowledge(seqs)
        await agent.record(filler)  # below the mark again: re-armed
        while not outbox.near_full():
            await agent.record(filler)
        assert len(alarms()) == 2
    finally:
        outbox.close()


async def test_reviews_are_sealed_into_one_chain_across_acks_and_restarts(tmp_path: Path) -> None:
    """The pad's tamper-evident log: each review links to the previous one, whatever lies between.

    Usage records take seqs between the reviews, acknowledged reviews leave the outbox, and the
    agent restarts on the same file; a review refused before it is stored does not move the tip.
    """
    path = tmp_path / "outbox.sqlite3"
    sent: list[Review] = []

    def take(box: Outbox) -> None:
        rows = box.pending(limit=1000)
        sent.extend(
            r for r in (decode(x.channel, x.payload) for x in rows) if isinstance(r, Review)
        )
        box.acknowledge(x.seq for x in rows)

    for run in range(2):
        box = Outbox(path)
        try:
            agent = offline_agent(box)
            for n in range(3):
                await agent.record(
                    Review(case_number=f"44011720261122{run}{n:04d}", rating=Rating.SATISFIED)
                )
                await agent.record(PrintJob(pages=1))
            with pytest.raises(RecordError, match="exceeds"):
                await agent.record(
                    Review(case_number="x", rating=Rating.BASIC, comment="差" * 300_000)
                )
            take(box)
        finally:
            box.close()

    assert [r.prev_hash for r in sent] == [GENESIS, *(r.hash for r in sent[:-1])]
    assert all(r.hash == review_hash(r) for r in sent)
    verdict = chain_check.check(None, sent)
    assert verdict.intact, verdict.problems
    assert verdict.tip == chain_check.ChainTip(sent[-1].seq, sent[-1].hash)
