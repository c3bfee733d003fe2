"""Record delivery: publish the outbox in seq order within a window, resend until acknowledged.

The control plane acknowledges records only after its database commit (``Ack``), so a broker's
PUBACK proves nothing; a record leaves the window, and the outbox, only by an ``Ack``. Resend
rules, all with the same ``seq`` (the ingest is idempotent on it):

- after a reconnect, every unacknowledged record is published again, oldest first;
- a record unacknowledged ``ack_timeout_s`` after it was published is published again, oldest
  first; each further resend of it waits twice as long (up to ``RESEND_BACKOFF_MAX``), so a
  control plane that is down or far behind is not buried in duplicates by its fleet.

``InFlight`` holds these rules as pure, clock-injected logic; ``RecordSender`` does the IO.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from edge.protocol import Ack

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
_LOGGED_SEQS = 10


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    max_in_flight: int = MAX_IN_FLIGHT
    ack_timeout_s: float = ACK_TIMEOUT_S
    max_publishing: int = MAX_PUBLISHING

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.ack_timeout_s <= 0 or self.max_publishing < 1:
            msg = f"need max_in_flight >= 1, ack_timeout_s > 0, max_publishing >= 1; not {self}"
            raise ValueError(msg)


@dataclass(slots=True)
class _Sent:
    at: float
    resends: int = 0


class InFlight:
    """Which records are published and unacknowledged, since when, and which are due again."""

    def __init__(self, settings: DeliverySettings, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._sent: dict[int, _Sent] = {}

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
        self._sent[seq] = _Sent(self._clock(), previous.resends + 1 if previous else 0)

    def acknowledge(self, seqs: Iterable[int]) -> int:
        """Forget acknowledged (or vanished) records; unknown seqs are ignored. Returns how many."""
        return sum(self._sent.pop(seq, None) is not None for seq in seqs)

    def clear(self) -> None:
        """The connection is new: nothing published on the old one counts as in flight."""
        self._sent.clear()

    def due(self) -> list[int]:
        """Records whose acknowledgement is overdue, oldest first."""
        now = self._clock()
        return sorted(seq for seq, sent in self._sent.items() if self._deadline(sent) <= now)

    def next_due_in(self) -> float | None:
        """Seconds until the next record falls due (0 if one is due now); None if none in flight."""
        if not self._sent:
            return None
        earliest = min(self._deadline(sent) for sent in self._sent.values())
        return max(0.0, earliest - self._clock())

    def _deadline(self, sent: _Sent) -> float:
        factor = min(1 << min(sent.resends, _MAX_DOUBLINGS), RESEND_BACKOFF_MAX)
        return sent.at + self._settings.ack_timeout_s * factor


Publish = Callable[[PendingRecord], Coroutine[Any, Any, None]]
"""Publishes one record (QoS 1); may return only once the broker has it. Raises when the
connection is lost."""


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
            for record in self._outbox.pending(published_up_to, self._in_flight.room()):
                await pipeline.start(record, self._in_flight)
                published_up_to = record.seq
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
        for record in records:
            await pipeline.start(record, self._in_flight)
        self.resent += len(records)


class _Pipeline:
    """Hands records to the MQTT client in seq order, at most ``limit`` awaiting their PUBACK."""

    def __init__(self, tasks: asyncio.TaskGroup, publish: Publish, limit: int) -> None:
        self._tasks = tasks
        self._publish = publish
        self._slots = asyncio.Semaphore(limit)

    async def start(self, record: PendingRecord, in_flight: InFlight) -> None:
        # Slots are taken here, in the sender's own loop, so records reach the client in seq
        # order whatever order waiting tasks would be woken in.
        await self._slots.acquire()
        in_flight.sent(record.seq)
        self._tasks.create_task(self._publish_one(record), name=f"publish-{record.seq}")

    async def _publish_one(self, record: PendingRecord) -> None:
        try:
            await self._publish(record)
        finally:
            self._slots.release()


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
