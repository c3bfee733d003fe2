"""A record message's records, sorted into rows to store, dead letters and reviews. Pure.

The ingest decodes each record of a message on its own (``decode_records``): the good ones
become rows of the batch (a review also goes to the 好差评 tables), a refused one a dead letter
kept raw for an operator, with its seq when it can be read so the device is told to stop
resending it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from edge.protocol import ProtocolError, RecordItem, Review, probe_seq
from edge.protocol import topics as wire

from .records import RecordRow, RejectedRow, record_type
from .reviews.intake import Arrived


@dataclass(slots=True)
class SortedRecords:
    rows: list[RecordRow] = field(default_factory=list)
    dead: list[RejectedRow] = field(default_factory=list)
    reviews: list[Arrived] = field(default_factory=list)
    errors: list[ProtocolError] = field(default_factory=list)
    """Why each dead letter was refused, for the reject counters and the log."""


def sort_records(topic: wire.Topic, items: Sequence[RecordItem], now: datetime) -> SortedRecords:
    """The message's records as rows, dead letters and reviews, in the order they came."""
    sorted_ = SortedRecords()
    for item in items:
        if item.payload is not None:
            text = item.raw.decode()
            sorted_.rows.append(
                RecordRow(
                    device_id=topic.subject,
                    seq=item.payload.seq,
                    channel=topic.channel.value,
                    type=record_type(item.payload),
                    device_time=item.payload.at,
                    received_at=now,
                    payload=text,
                    record=item.payload,
                )
            )
            if isinstance(item.payload, Review):
                sorted_.reviews.append(Arrived(topic.subject, item.payload, text, now))
        elif item.error is not None:
            sorted_.errors.append(item.error)
            sorted_.dead.append(dead_letter(topic, item.raw, probe_seq(item.raw), item.error, now))
    return sorted_


def dead_letter(
    topic: wire.Topic, raw: bytes, seq: int | None, exc: ProtocolError, now: datetime
) -> RejectedRow:
    """A record (or whole message) that can never be stored as sent, kept raw.

    Kept as text: bytes that are not UTF-8 become U+FFFD (and so do NULs, when stored).
    """
    return RejectedRow(
        topic=str(topic),
        device_id=topic.subject,
        seq=seq,
        reason=exc.reason.value,
        detail=str(exc),
        payload=raw.decode(errors="replace"),
        received_at=now,
    )
