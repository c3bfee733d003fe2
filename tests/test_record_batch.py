"""The ingest's record batch cut between its messages, and a refused message made dead letters.

Pure: no broker, no database. The ingest commits a refused batch again in halves down to the
one message the database refuses (tests/test_ingest_records.py runs that on both databases).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from control_plane.batch import DeviceAck, RecordBatch
from control_plane.records import RecordRow, RejectedRow
from edge.mqtt import Incoming
from edge.protocol import Channel
from edge.protocol import topics as wire

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def message(device: str, first_seq: int, count: int) -> tuple[Incoming, list[RecordRow]]:
    incoming = Incoming(wire.uplink(device, Channel.USAGE), b"[...]", retain=False, qos=1, mid=1)
    rows = [
        RecordRow(device, seq, "usage", "print", NOW, NOW, f'{{"seq":{seq}}}')
        for seq in range(first_seq, first_seq + count)
    ]
    return incoming, rows


def dead(device: str, seq: int) -> RejectedRow:
    topic = wire.uplink(device, Channel.USAGE)
    return RejectedRow(topic, device, seq, "schema", "bad", "{}", NOW)


def five_messages() -> RecordBatch:
    batch = RecordBatch()
    for n, (device, first, count) in enumerate(
        [("a", 1, 3), ("b", 1, 1), ("a", 4, 2), ("c", 1, 4), ("b", 2, 1)]
    ):
        incoming, rows = message(device, first, count)
        batch.add(incoming, rows, [dead(device, 100 + n)] if n % 2 else [])
    return batch


def test_halves_cut_between_messages_and_keep_everything_once() -> None:
    batch = five_messages()
    first, second = batch.halves()
    assert (len(first.messages), len(second.messages)) == (2, 3)
    assert first.records + second.records == batch.records
    assert first.rejected + second.rejected == batch.rejected
    assert first.messages + second.messages == batch.messages
    assert [r.device_id for r in first.records] == ["a", "a", "a", "b"]
    # Each half can be cut again, down to single messages, with the same records in order.
    singles: list[RecordBatch] = []
    pending = [batch]
    while pending:
        part = pending.pop(0)
        if len(part.messages) == 1:
            singles.append(part)
        else:
            pending[:0] = part.halves()
    assert [len(s.records) for s in singles] == [3, 1, 2, 4, 1]
    assert [r for s in singles for r in s.records] == batch.records
    assert [d.seq for s in singles for d in s.rejected] == [101, 103]


def test_a_single_message_has_no_halves() -> None:
    incoming, rows = message("a", 1, 2)
    batch = RecordBatch()
    batch.add(incoming, rows)
    with pytest.raises(ValueError, match="no halves"):
        batch.halves()


def test_parts_are_halves_then_records_one_by_one() -> None:
    batch = five_messages()
    assert [len(p.messages) for p in batch.parts() or []] == [2, 3]
    incoming, rows = message("a", 7, 3)
    single = RecordBatch()
    single.add(incoming, rows, [dead("a", 10)])
    parts = single.parts()
    assert parts is not None
    assert [p.records for p in parts] == [[r] for r in rows]
    # The dead letters go with the first part, the message (its PUBACK) with the last only.
    assert [len(p.rejected) for p in parts] == [1, 0, 0]
    assert [p.messages for p in parts] == [[], [], [incoming]]
    one = RecordBatch()
    one.add(*message("a", 1, 1))
    assert one.parts() is None


def test_a_refused_record_becomes_a_dead_letter_its_device_is_told_of() -> None:
    incoming, rows = message("a", 7, 1)
    batch = RecordBatch()
    batch.add(incoming, rows, [dead("a", 10)])
    unstorable = batch.as_unstorable("IntegrityError: refused")
    assert unstorable.records == []
    assert unstorable.messages == [incoming]  # its PUBACK goes after the dead letter's commit
    assert [(d.seq, d.reason) for d in unstorable.rejected] == [(10, "schema"), (7, "unstorable")]
    kept = unstorable.rejected[1]
    assert (kept.topic, kept.payload, kept.received_at) == (incoming.topic, '{"seq":7}', NOW)
    assert kept.detail == "IntegrityError: refused"
    assert unstorable.acks() == [DeviceAck("a", (), (7, 10))]
