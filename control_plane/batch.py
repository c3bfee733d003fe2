"""The ingest's record batch: what to commit together and whom to acknowledge after. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from edge.mqtt import Incoming

from .records import RecordRow, RejectedRow
from .reviews.intake import Arrived

BATCH_MAX_RECORDS = 500
"""Records per commit, at most. The broker's in-flight window must exceed this (mosquitto.d),
because no message of a batch is acknowledged (PUBACK) before the batch is committed."""


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
