"""The ingest's record batch: what to commit together and whom to acknowledge after. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from edge.mqtt import Incoming
from edge.protocol import Channel, RejectReason
from edge.protocol import topics as wire

from .records import RecordRow, RejectedRow
from .reviews.intake import Arrived

BATCH_MAX_RECORDS = 500
"""Records per commit the ingest aims at: once a batch holds this many, the ingest reads no
more until the commit under way ends. The broker's in-flight window must exceed this
(mosquitto.d), because no message of a batch is acknowledged (PUBACK) before the batch is
committed. A batch can still grow past it with what one read of the socket brought: Mosquitto
before 2.0.13 sends more than the ingest's Receive Maximum (1,000) when PUBACKs come back in
bursts (its PUBACK path refilled the in-flight window without looking at the client's quota;
fixed upstream in 2.0.13, eclipse-mosquitto/mosquitto#2301), and with Debian 12's 2.0.11
batches of up to ~4,300 single-record messages were seen at 20,000 records/s; the
connection's ``INBOX_LIMIT`` bounds what waits in memory. Compose's broker (2.0.20) keeps to
the Receive Maximum."""


@dataclass(frozen=True, slots=True)
class DeviceAck:
    """What one device is told after a commit: stored (or already stored) and rejected seqs."""

    device_id: str
    seqs: tuple[int, ...]
    rejected: tuple[int, ...]


@dataclass
class RecordBatch:
    """Records and dead letters waiting for one commit, with the messages to PUBACK after it."""

    records: list[RecordRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    messages: list[Incoming] = field(default_factory=list)
    reviews: list[Arrived] = field(default_factory=list)
    """The review records among ``records``, decoded: stored as their cases' reviews too."""
    ends: list[tuple[int, int, int]] = field(default_factory=list)
    """After each message: how many records, dead letters and reviews the batch held, so that
    it can be cut between messages (``halves``)."""

    def __len__(self) -> int:
        return len(self.records) + len(self.rejected)

    def add(
        self,
        message: Incoming,
        records: Iterable[RecordRow] = (),
        rejected: Iterable[RejectedRow] = (),
        reviews: Iterable[Arrived] = (),
    ) -> None:
        """A message's records and dead letters; the message is acknowledged after the commit."""
        self.records.extend(records)
        self.reviews.extend(reviews)
        self.rejected.extend(rejected)
        self.messages.append(message)
        self.ends.append((len(self.records), len(self.rejected), len(self.reviews)))

    def halves(self) -> tuple[RecordBatch, RecordBatch]:
        """The batch cut between its messages into two of (nearly) equal message counts."""
        if len(self.messages) < 2:  # noqa: PLR2004 - two messages at least, to cut between
            msg = "a batch of one message has no halves"
            raise ValueError(msg)
        middle = len(self.messages) // 2
        records, rejected, reviews = self.ends[middle - 1]
        first = RecordBatch(
            self.records[:records],
            self.rejected[:rejected],
            self.messages[:middle],
            self.reviews[:reviews],
            self.ends[:middle],
        )
        rest = [(r - records, d - rejected, v - reviews) for r, d, v in self.ends[middle:]]
        second = RecordBatch(
            self.records[records:],
            self.rejected[rejected:],
            self.messages[middle:],
            self.reviews[reviews:],
            rest,
        )
        return first, second

    def parts(self) -> list[RecordBatch] | None:
        """The batch in smaller batches, to find what a database refuses; None for one record.

        Two halves cut between messages while it holds several; a single message's records
        one batch each, the message (its PUBACK) with the last, so that it is acknowledged once,
        after all of them, and its dead letters with the first.
        """
        if len(self.messages) > 1:
            return list(self.halves())
        if len(self.records) < 2:  # noqa: PLR2004 - one record or none: nothing to cut
            return None
        reviews = {review.key: review for review in self.reviews}
        parts = []
        for record in self.records:
            part = RecordBatch(records=[record])
            review = reviews.get((record.device_id, record.seq))
            if review is not None:
                part.reviews.append(review)
            parts.append(part)
        parts[0].rejected = list(self.rejected)
        parts[-1].messages = list(self.messages)
        return parts

    def as_unstorable(self, why: str) -> RecordBatch:
        """The batch with each record a dead letter (``unstorable``), kept raw with ``why``.

        For a record the database refuses whatever else is committed with it: kept for an
        operator and its device told to stop sending it, as for any record that can never be
        stored as sent, rather than holding up every record behind it.
        """
        dead = [
            RejectedRow(
                topic=wire.uplink(record.device_id, Channel(record.channel)),
                device_id=record.device_id,
                seq=record.seq,
                reason=RejectReason.UNSTORABLE.value,
                detail=why,
                payload=record.payload,
                received_at=record.received_at,
            )
            for record in self.records
        ]
        return RecordBatch(rejected=[*self.rejected, *dead], messages=list(self.messages))

    def full(self) -> bool:
        return len(self) >= BATCH_MAX_RECORDS

    def acks(self) -> list[DeviceAck]:
        """One acknowledgement per device, seqs sorted and without repeats."""
        stored: defaultdict[str, set[int]] = defaultdict(set)
        refused: defaultdict[str, set[int]] = defaultdict(set)
        for record in self.records:
            stored[record.device_id].add(record.seq)
        for dead in self.rejected:
            if dead.device_id is not None and dead.seq is not None:
                refused[dead.device_id].add(dead.seq)
        return [
            DeviceAck(device, tuple(sorted(stored[device])), tuple(sorted(refused[device])))
            for device in sorted(stored.keys() | refused.keys())
        ]
