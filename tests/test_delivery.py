"""Record delivery with a fake clock and a fake publish: order, window, resends, acks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from edge.agent.delivery import (
    ACK_TIMEOUT_S,
    MAX_IN_FLIGHT,
    RESEND_BACKOFF_MAX,
    DeliverySettings,
    InFlight,
    RecordSender,
)
from edge.agent.outbox import Outbox, PendingRecord
from edge.protocol import Ack, Channel

SETTLE_S = 2.0
"""Bound on waiting for the sender to finish reacting; it needs microseconds."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class LinkLostError(ConnectionError):
    pass


class FakeWire:
    """Stands in for the MQTT connection: remembers what was published, can break."""

    def __init__(self) -> None:
        self.published: list[int] = []
        self.broken = False
        self._changed = asyncio.Condition()

    async def publish(self, record: PendingRecord) -> None:
        if self.broken:
            raise LinkLostError("connection lost")
        async with self._changed:
            self.published.append(record.seq)
            self._changed.notify_all()

    async def until_published(self, count: int) -> None:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: len(self.published) >= count), SETTLE_S
            )

    def take(self) -> list[int]:
        taken, self.published = self.published, []
        return taken


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox() -> Iterator[Outbox]:
    box = Outbox.in_memory(clock_ms=lambda: 1)
    yield box
    box.close()


def add(outbox: Outbox, n: int) -> list[int]:
    channels = [Channel.USAGE, Channel.REVIEW, Channel.EVENT]
    return [outbox.append(channels[i % 3], lambda s: b'{"seq":%d}' % s) for i in range(n)]


class Running:
    """A sender running over a fake wire, driven one reaction at a time."""

    def __init__(self, sender: RecordSender, wire: FakeWire) -> None:
        self.sender = sender
        self.wire = wire
        self.task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        self.task = asyncio.create_task(self.sender.run(self.wire.publish), name="sender")
        await self.settled()

    async def disconnect(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    async def settled(self) -> None:
        """Wait until the sender has acted on everything and waits again (if it runs at all)."""
        if self.task is not None and not self.task.done():
            await asyncio.wait_for(self.sender.idle.wait(), SETTLE_S)

    async def appended(self) -> None:
        self.sender.appended()
        await self.settled()

    async def tick(self, clock: FakeClock, seconds: float) -> None:
        clock.advance(seconds)
        self.sender.wake()  # a real sender wakes by its own timer at the deadline
        await self.settled()

    async def ack(self, *seqs: int, rejected: tuple[int, ...] = ()) -> int:
        deleted = self.sender.acknowledge(Ack(seqs=seqs, rejected=rejected))
        await self.settled()
        return deleted


@pytest.fixture
async def run(outbox: Outbox, clock: FakeClock) -> AsyncIterator[Running]:
    running = Running(
        RecordSender(outbox, DeliverySettings(max_in_flight=4, ack_timeout_s=30), clock=clock),
        FakeWire(),
    )
    yield running
    if running.task is not None and not running.task.done():
        await running.disconnect()


# The pure tracker


def test_defaults_are_the_named_constants() -> None:
    assert DeliverySettings() == DeliverySettings(MAX_IN_FLIGHT, ACK_TIMEOUT_S)
    assert (MAX_IN_FLIGHT, ACK_TIMEOUT_S) == (500, 30.0)


@pytest.mark.parametrize(("window", "timeout"), [(0, 30.0), (10, 0.0), (10, -1.0)])
def test_settings_refuse_a_window_or_timeout_that_cannot_work(window: int, timeout: float) -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        DeliverySettings(window, timeout)


def test_in_flight_window_room_and_acks(clock: FakeClock) -> None:
    flight = InFlight(DeliverySettings(max_in_flight=3, ack_timeout_s=10), clock)
    assert (flight.room(), flight.next_due_in()) == (3, None)
    for seq in (7, 8, 9):
        flight.sent(seq)
    assert (len(flight), flight.room()) == (3, 0)

    assert flight.acknowledge([8, 8, 12345]) == 1
    assert (8 in flight, flight.room()) == (False, 1)
    flight.clear()
    assert (len(flight), flight.room()) == (0, 3)


def test_in_flight_due_after_the_timeout_oldest_first(clock: FakeClock) -> None:
    flight = InFlight(DeliverySettings(max_in_flight=10, ack_timeout_s=10), clock)
    flight.sent(5)
    clock.advance(4)
    flight.sent(3)  # a smaller seq sent later still comes out in seq order once both are due
    assert (flight.due(), flight.next_due_in()) == ([], 6)

    clock.advance(6)
    assert (flight.due(), flight.next_due_in()) == ([5], 0)
    clock.advance(4)
    assert flight.due() == [3, 5]


def test_in_flight_each_resend_of_a_record_waits_twice_as_long_up_to_a_cap(
    clock: FakeClock,
) -> None:
    flight = InFlight(DeliverySettings(max_in_flight=10, ack_timeout_s=10), clock)
    flight.sent(1)
    waits = []
    for _ in range(7):
        wait = flight.next_due_in()
        assert wait is not None
        waits.append(wait)
        clock.advance(wait)
        assert flight.due() == [1]
        flight.sent(1)

    assert waits == [10, 20, 40, 80, 80, 80, 80]
    assert RESEND_BACKOFF_MAX == 8
    flight.clear()  # a new connection starts the count again
    flight.sent(1)
    assert flight.next_due_in() == 10


# The sender


async def test_publishes_pending_records_in_seq_order(outbox: Outbox, run: Running) -> None:
    seqs = add(outbox, 3)
    await run.connect()
    assert run.wire.take() == seqs

    more = add(outbox, 1)
    await run.appended()
    assert run.wire.take() == more
    assert run.sender.in_flight == 4


async def test_at_most_max_in_flight_unacknowledged_and_acks_free_the_window(
    outbox: Outbox, run: Running
) -> None:
    seqs = add(outbox, 10)
    await run.connect()
    assert run.wire.take() == seqs[:4]

    await run.appended()  # a wake without room publishes nothing
    assert run.wire.take() == []

    assert await run.ack(seqs[0], seqs[2]) == 2
    assert run.wire.take() == seqs[4:6]
    assert run.sender.in_flight == 4
    await run.ack(*seqs[:8])
    assert run.wire.take() == seqs[8:10]
    await run.ack(*seqs)
    assert (run.sender.in_flight, outbox.backlog(), run.wire.take()) == (0, 0, [])


async def test_unacknowledged_records_are_published_again_after_the_ack_timeout(
    outbox: Outbox, run: Running, clock: FakeClock
) -> None:
    seqs = add(outbox, 3)
    await run.connect()
    run.wire.take()
    await run.ack(seqs[1])

    await run.tick(clock, 29.9)
    assert run.wire.take() == []
    await run.tick(clock, 0.1)
    assert run.wire.take() == [seqs[0], seqs[2]]
    assert run.sender.resent == 2

    await run.tick(clock, 59.9)  # the second resend waits twice as long
    assert run.wire.take() == []
    await run.tick(clock, 0.1)
    assert run.wire.take() == [seqs[0], seqs[2]]

    await run.ack(seqs[0], seqs[2])
    await run.tick(clock, 1000)
    assert run.wire.take() == []


async def test_the_sender_wakes_by_itself_at_the_ack_timeout(outbox: Outbox) -> None:
    # Real time here: the only test that waits for the sender's own timer.
    sender = RecordSender(outbox, DeliverySettings(max_in_flight=4, ack_timeout_s=0.05))
    wire = FakeWire()
    seqs = add(outbox, 2)
    running = Running(sender, wire)
    await running.connect()

    await wire.until_published(4)
    assert wire.take()[:4] == seqs + seqs
    assert sender.resent >= 2
    await running.disconnect()


async def test_after_a_reconnect_everything_unacknowledged_is_published_again(
    outbox: Outbox, run: Running
) -> None:
    seqs = add(outbox, 6)
    await run.connect()
    assert run.wire.take() == seqs[:4]
    await run.ack(seqs[1])
    assert run.wire.take() == [seqs[4]]
    await run.disconnect()

    await run.ack(seqs[3])  # an ack queued at the broker may arrive while we are away
    await run.connect()
    assert run.wire.take() == [seqs[0], seqs[2], seqs[4], seqs[5]]


async def test_a_lost_connection_ends_run_with_its_own_error(outbox: Outbox, run: Running) -> None:
    add(outbox, 2)
    await run.connect()
    run.wire.take()
    run.wire.broken = True
    add(outbox, 1)
    run.sender.appended()

    assert run.task is not None
    with pytest.raises(LinkLostError):
        await asyncio.wait_for(run.task, SETTLE_S)
    assert outbox.backlog() == 3


async def test_acks_of_unknown_or_repeated_seqs_are_harmless(outbox: Outbox, run: Running) -> None:
    seqs = add(outbox, 3)
    await run.connect()
    run.wire.take()

    assert await run.ack(seqs[0]) == 1
    assert await run.ack(seqs[0]) == 0
    assert await run.ack(1, 2, seqs[-1] + 100) == 0
    assert [r.seq for r in outbox.pending()] == seqs[1:]
    assert run.sender.in_flight == 2
    assert run.wire.take() == []


async def test_rejected_seqs_are_deleted_too_and_free_the_window(
    outbox: Outbox, run: Running
) -> None:
    seqs = add(outbox, 5)
    await run.connect()
    run.wire.take()

    assert await run.ack(seqs[0], rejected=(seqs[1],)) == 2
    assert [r.seq for r in outbox.pending()] == seqs[2:]
    assert run.wire.take() == [seqs[4]]


async def test_drained_is_set_once_every_record_is_acknowledged(
    outbox: Outbox, run: Running
) -> None:
    assert run.sender.drained.is_set()
    seqs = add(outbox, 2)
    await run.appended()
    assert not run.sender.drained.is_set()
    await run.connect()

    await run.ack(seqs[0])
    assert not run.sender.drained.is_set()
    await run.ack(seqs[1])
    assert run.sender.drained.is_set()


async def test_acks_without_a_connection_still_delete(outbox: Outbox, clock: FakeClock) -> None:
    sender = RecordSender(outbox, clock=clock)
    seqs = add(outbox, 3)

    assert sender.acknowledge(Ack(seqs=(seqs[0],), rejected=(seqs[2],))) == 2
    assert [r.seq for r in outbox.pending()] == [seqs[1]]
