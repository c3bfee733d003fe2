"""The ingest's record batch: what to commit together and whom to acknowledge after. Pure."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from edge.mqtt import Incoming

from .records import RecordRow, RejectedRow

BATCH_MAX_RECORDS = 500
"""Records per commit. The broker's in-flight window must exceed this (mosquitto.d), because
no message of a batch is acknowledged (PUBACK) before the batch is committed."""
BATCH_MAX_WAIT_S = 0.05
"""How long the first record of a batch waits for others before the batch is committed anyway."""


@dataclass(frozen=True, slots=True)
class DeviceAck:
    """What one device is told after a commit: stored (or already stored) and rejected seqs."""

    device_id: str
    seqs: tuple[int, ...]
    rejected: tuple[int, ...]


@dataclass
class RecordBatch:
    """Records and dead letters waiting for one commit, with the messages to PUBACK after it."""

    opened_at: float | None = None
    records: list[RecordRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    messages: list[Incoming] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.rejected)

    def add_record(self, row: RecordRow, message: Incoming, now: float) -> None:
        self._open(now)
        self.records.append(row)
        self.messages.append(message)

    def add_rejected(self, row: RejectedRow, message: Incoming, now: float) -> None:
        self._open(now)
        self.rejected.append(row)
        self.messages.append(message)

    def _open(self, now: float) -> None:
        if self.opened_at is None:
            self.opened_at = now

    def full(self) -> bool:
        return len(self) >= BATCH_MAX_RECORDS

    def due(self, now: float) -> bool:
        """Whether the batch should be committed now: full, or its oldest entry waited enough."""
        if not self:
            return False
        assert self.opened_at is not None  # noqa: S101 - set by the first add
        return self.full() or now - self.opened_at >= BATCH_MAX_WAIT_S

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
