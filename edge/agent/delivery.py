"""Record delivery: publish the outbox in seq order within a window, resend until acknowledged.

The control plane acknowledges records only after its database commit (``Ack``), so a broker's
PUBACK proves nothing; a record leaves the window, and the outbox, only by an ``Ack``. Resend
rules, all with the same ``seq`` (the ingest is idempotent on it):

- after a reconnect, every unacknowledged record is published again, oldest first;
- a record unacknowledged ``ack_timeout_s`` after it was published is published again, oldest
  first; each further resend of it waits twice as long (up to ``RESEND_BACKOFF_MAX``), so a
  control plane that is down or far behind is not buried in duplicates by its fleet.

With ``records_per_message`` above 1, consecutive records of one channel that are ready together
(a backlog) go up as one message, a JSON array; a record recorded on its own still goes up alone.
A message costs the agent, the broker and the control plane about as much as a record does, so
a backlog drains many times faster this way.

``InFlight`` and ``pack`` hold these rules as pure, clock-injected logic; ``RecordSender`` does
the IO.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from edge.protocol import MAX_PAYLOAD_BYTES, MAX_RECORDS_PER_MESSAGE, Ack

from .outbox import Outbox, PendingRecord

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 500
"""Records published and not yet acknowledged, at most: the control plane commits in batches of
up to 500, so one full window is one batch."""
ACK_TIMEOUT_S = 30.0
"""Publish a record again when its acknowledgement has not come this long after publishing."""
MAX_PUBLISHING = 8
"""Records handed to the MQTT client and not yet PUBACKed, at most. The client gives each
publish 10 s before it drops the connection, and warns above 10 pending; a small pipeline keeps
a slow link clear of both while still not paying one round trip per record."""
RESEND_BACKOFF_MAX = 8
"""A record's n-th resend waits ack_timeout_s x 2**(n-1), at most this many ack timeouts."""
_MAX_DOUBLINGS = RESEND_BACKOFF_MAX.bit_length()
_HEAP_SLACK = 2
_HEAP_MIN = 64
"""The deadline heap is rebuilt when it holds more than twice the window's entries (plus this)."""
_LOGGED_SEQS = 10


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    max_in_flight: int = MAX_IN_FLIGHT
    ack_timeout_s: float = ACK_TIMEOUT_S
    max_publishing: int = MAX_PUBLISHING
    records_per_message: int = MAX_RECORDS_PER_MESSAGE
    """Records one message may carry, as in the agent config; 1 publishes every record alone."""

    def __post_init__(self) -> None:
        if (
            self.max_in_flight < 1
            or self.ack_timeout_s <= 0
            or self.max_publishing < 1
            or not 1 <= self.records_per_message <= MAX_RECORDS_PER_MESSAGE
        ):
            msg = (
                "need max_in_flight >= 1, ack_timeout_s > 0, max_publishing >= 1, "
                f"records_per_message 1 to {MAX_RECORDS_PER_MESSAGE}; not {self}"
            )
            raise ValueError(msg)


@dataclass(slots=True)
class _Sent:
    deadline: float
    resends: int = 0


class InFlight:
    """Which records are published and unacknowledged, since when, and which are due again."""

    def __init__(self, settings: DeliverySettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._sent: dict[int, _Sent] = {}
        self._deadlines: list[tuple[float, int]] = []
        """A heap of (deadline, seq), so that a wake-up does not scan the whole window. Entries
        of records acknowledged or published again since stay until they surface or the heap is
        rebuilt; every record in flight has its current entry in it."""

    def __len__(self) -> int:
        return len(self._sent)

    def __contains__(self, seq: object) -> bool:
        return seq in self._sent

    def room(self) -> int:
        """How many new records may be published now."""
        return max(0, self._settings.max_in_flight - len(self._sent))

    def sent(self, seq: int) -> None:
        """``seq`` was published now (first time or again)."""
        previous = self._sent.get(seq)
        resends = previous.resends + 1 if previous else 0
        factor = min(1 << min(resends, _MAX_DOUBLINGS), RESEND_BACKOFF_MAX)
        deadline = self._clock() + self._settings.ack_timeout_s * factor
        self._sent[seq] = _Sent(deadline, resends)
        heapq.heappush(self._deadlines, (deadline, seq))
        if len(self._deadlines) > _HEAP_SLACK * len(self._sent) + _HEAP_MIN:
            self._deadlines = [(sent.deadline, seq) for seq, sent in self._sent.items()]
            heapq.heapify(self._deadlines)

    def acknowledge(self, seqs: Iterable[int]) -> int:
        """Forget acknowledged (or vanished) records; unknown seqs are ignored. Returns how many."""
        return sum(self._sent.pop(seq, None) is not None for seq in seqs)

    def clear(self) -> None:
        """The connection is new: nothing published on the old one counts as in flight."""
        self._sent.clear()
        self._deadlines.clear()

    def due(self) -> list[int]:
        """Records whose acknowledgement is overdue, oldest first."""
        now = self._clock()
        heap = self._deadlines
        found: set[int] = set()
        # Below an entry that is not due, none is: visit the due part of the heap only.
        visit = [0]
        while visit:
            i = visit.pop()
            if i < len(heap) and heap[i][0] <= now:
                if self._current(heap[i]):
                    found.add(heap[i][1])
                visit += (2 * i + 1, 2 * i + 2)
        return sorted(found)

    def next_due_in(self) -> float | None:
        """Seconds until the next record falls due (0 if one is due now); None if none in flight."""
        if not self._sent:
            return None
        while not self._current(self._deadlines[0]):
            heapq.heappop(self._deadlines)
        return max(0.0, self._deadlines[0][0] - self._clock())

    def _current(self, entry: tuple[float, int]) -> bool:
        deadline, seq = entry
        sent = self._sent.get(seq)
        return sent is not None and sent.deadline == deadline


def pack(
    records: Iterable[PendingRecord], records_per_message: int
) -> Iterator[list[PendingRecord]]:
    """The records, in order, cut into runs that each go up as one message.

    A run holds consecutive records of one channel: at most ``records_per_message`` of them, and
    no more than fit in one payload as a JSON array.
    """
    run: list[PendingRecord] = []
    size = 0
    for record in records:
        added = len(record.payload) + 1  # the record and its comma (or the closing bracket)
        if run and (
            record.channel is not run[0].channel
            or len(run) == records_per_message
            or size + added > MAX_PAYLOAD_BYTES
        ):
            yield run
            run = []
        if not run:
            size = 1  # the opening bracket
        run.append(record)
        size += added
    if run:
        yield run


def message(run: Sequence[PendingRecord]) -> PendingRecord:
    """What goes up for a run: its record when alone, else a JSON array of its records.

    An array travels as a PendingRecord of the run's channel under the first record's seq.
    """
    first = run[0]
    if len(run) == 1:
        return first
    return PendingRecord(first.seq, first.channel, b"[" + b",".join(r.payload for r in run) + b"]")


Publish = Callable[[PendingRecord], Coroutine[Any, Any, None]]
"""Publishes one message of records (QoS 1, see ``message``); may return only once the broker has
it. Raises when the connection is lost."""


class RecordSender:
    """Drains the outbox over one connection after another, and applies the control plane's acks.

    ``run`` lives as long as a connection; ``acknowledge`` and ``wake`` may be called at any time.
    """

    def __init__(
        self,
        outbox: Outbox,
        settings: DeliverySettings = DeliverySettings(),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._outbox = outbox
        self._in_flight = InFlight(settings, clock)
        self._settings = settings
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()
        """Set while ``run`` waits with nothing to publish; cleared by ``wake``."""
        self.drained = asyncio.Event()
        """Set while every record is acknowledged (the outbox is empty)."""
        if outbox.empty():
            self.drained.set()
        self.resent = 0
        """Records published again after their ack timed out (not counting reconnects)."""

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def wake(self) -> None:
        """Something changed (a record was appended, acks freed the window): look again."""
        self.idle.clear()
        self._wake.set()

    def appended(self) -> None:
        """A record was appended to the outbox."""
        self.drained.clear()
        self.wake()

    def acknowledge(self, ack: Ack) -> int:
        """Delete committed and rejected records from the outbox; returns how many were there."""
        if ack.rejected:
            log.warning(
                "control plane rejected %d records (seqs %s%s); deleted, resending cannot fix them",
                len(ack.rejected),
                ", ".join(map(str, ack.rejected[:_LOGGED_SEQS])),
                ", ..." if len(ack.rejected) > _LOGGED_SEQS else "",
            )
        seqs = (*ack.seqs, *ack.rejected)
        deleted = self._outbox.acknowledge(seqs)
        if deleted and self._outbox.empty():
            self.drained.set()
        if self._in_flight.acknowledge(seqs):
            self.wake()
        return deleted

    async def run(self, publish: Publish) -> None:
        """Publish until cancelled or until ``publish`` raises (the connection is gone)."""
        # Whatever was in flight on an earlier connection may be lost with it: start again from
        # the oldest unacknowledged record.
        self._in_flight.clear()
        try:
            async with asyncio.TaskGroup() as publishes:
                await self._loop(_Pipeline(publishes, publish, self._settings.max_publishing))
        except BaseExceptionGroup as failed:
            # The caller sees the connection's own error (e.g. MqttError), not a group of them.
            raise _first_leaf(failed) from None
        finally:
            self.idle.clear()

    async def _loop(self, pipeline: _Pipeline) -> None:
        published_up_to = -1
        while True:
            self._wake.clear()
            await self._resend_overdue(pipeline)
            pending = self._outbox.pending(published_up_to, self._in_flight.room())
            for run in pack(pending, self._settings.records_per_message):
                await pipeline.start(run, self._in_flight)
                published_up_to = run[-1].seq
            self.idle.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._in_flight.next_due_in())
            self.idle.clear()

    async def _resend_overdue(self, pipeline: _Pipeline) -> None:
        due = self._in_flight.due()
        if not due:
            return
        records = self._outbox.records(due)
        # Acknowledged between the ack's arrival and now (or deleted by another ack): forget.
        self._in_flight.acknowledge(set(due) - {r.seq for r in records})
        if not records:
            return
        log.info(
            "no acknowledgement within %.1fs for %d records from seq %d; publishing them again",
            self._settings.ack_timeout_s,
            len(records),
            records[0].seq,
        )
        for run in pack(records, self._settings.records_per_message):
            await pipeline.start(run, self._in_flight)
        self.resent += len(records)


class _Pipeline:
    """Hands messages to the MQTT client in seq order, at most ``limit`` awaiting their PUBACK."""

    def __init__(self, tasks: asyncio.TaskGroup, publish: Publish, limit: int) -> None:
        self._tasks = tasks
        self._publish = publish
        self._slots = asyncio.Semaphore(limit)

    async def start(self, run: Sequence[PendingRecord], in_flight: InFlight) -> None:
        # Slots are taken here, in the sender's own loop, so records reach the client in seq
        # order whatever order waiting tasks would be woken in.
        await self._slots.acquire()
        for record in run:
            in_flight.sent(record.seq)
        outgoing = message(run)
        self._tasks.create_task(self._publish_one(outgoing), name=f"publish-{outgoing.seq}")

    async def _publish_one(self, outgoing: PendingRecord) -> None:
        try:
            await self._publish(outgoing)
        finally:
            self._slots.release()


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
