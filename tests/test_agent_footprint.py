"""What the agent's footprint work rests on: record arrays, range deletes, the deadline heap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.agent.config import DeliveryConfig
from edge.agent.delivery import DeliverySettings, InFlight, message, pack
from edge.agent.outbox import Outbox, PendingRecord, consecutive_runs
from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    MAX_RECORDS_PER_MESSAGE,
    Channel,
    PrintJob,
    decode_records,
    encode,
)

SQLITE_FULL = 2
"""``PRAGMA synchronous`` reads 2 for FULL."""


def record(seq: int, channel: Channel = Channel.USAGE, size: int = 0) -> PendingRecord:
    payload = encode(PrintJob(seq=seq, pages=1, printer="p" * size))
    return PendingRecord(seq, channel, payload)


def seqs_of(runs: Iterator[list[PendingRecord]]) -> list[list[int]]:
    return [[r.seq for r in run] for run in runs]


# --- pack and message -------------------------------------------------------------------------


def test_pack_cuts_at_the_record_limit_keeping_seq_order() -> None:
    records = [record(seq) for seq in range(1, 8)]

    assert seqs_of(pack(records, 3)) == [[1, 2, 3], [4, 5, 6], [7]]


def test_pack_never_mixes_channels() -> None:
    channels = [Channel.USAGE, Channel.USAGE, Channel.REVIEW, Channel.EVENT, Channel.USAGE]
    records = [record(seq, channel) for seq, channel in enumerate(channels, 1)]

    runs = list(pack(records, 100))

    assert seqs_of(iter(runs)) == [[1, 2], [3], [4], [5]]
    assert all(len({r.channel for r in run}) == 1 for run in runs)


def test_pack_with_one_record_per_message_sends_each_alone() -> None:
    assert seqs_of(pack([record(seq) for seq in range(1, 4)], 1)) == [[1], [2], [3]]


def test_pack_keeps_each_message_within_the_payload_limit() -> None:
    big = MAX_PAYLOAD_BYTES // 3
    records = [record(seq, size=big) for seq in range(1, 6)]

    runs = list(pack(records, 100))

    assert [len(run) for run in runs] == [2, 2, 1]
    assert all(len(message(run).payload) <= MAX_PAYLOAD_BYTES for run in runs)


def test_pack_of_nothing_is_nothing() -> None:
    assert list(pack([], 100)) == []


def test_a_record_alone_goes_up_as_itself() -> None:
    alone = record(7)

    assert message([alone]) is alone


def test_a_run_goes_up_as_the_json_array_the_control_plane_reads() -> None:
    run = [record(seq) for seq in range(10, 13)]

    sent = message(run)

    assert (sent.seq, sent.channel) == (10, Channel.USAGE)
    assert json.loads(sent.payload) == [json.loads(r.payload) for r in run]
    items = decode_records(Channel.USAGE, sent.payload)
    assert [item.payload.seq for item in items if item.payload] == [10, 11, 12]


# --- settings and config ----------------------------------------------------------------------


def test_settings_send_a_backlog_in_arrays_unless_told_otherwise() -> None:
    assert DeliverySettings().records_per_message == MAX_RECORDS_PER_MESSAGE


@pytest.mark.parametrize("value", [0, MAX_RECORDS_PER_MESSAGE + 1])
def test_settings_refuse_records_per_message_the_protocol_does_not_allow(value: int) -> None:
    with pytest.raises(ValueError, match="records_per_message"):
        DeliverySettings(records_per_message=value)


def test_the_agent_config_packs_a_backlog_as_far_as_the_protocol_allows() -> None:
    assert DeliveryConfig().records_per_message == MAX_RECORDS_PER_MESSAGE


# --- the outbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seqs", "runs"),
    [
        ([], []),
        ([5], [(5, 5)]),
        ([3, 1, 2], [(1, 3)]),
        ([1, 2, 4, 5, 9], [(1, 2), (4, 5), (9, 9)]),
        ([2, 2, 1, 1], [(1, 2)]),
    ],
)
def test_consecutive_runs(seqs: list[int], runs: list[tuple[int, int]]) -> None:
    assert consecutive_runs(seqs) == runs


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Outbox]:
    outbox = Outbox(tmp_path / "outbox.sqlite3", clock_ms=lambda: 1)
    yield outbox
    outbox.close()


def test_acknowledge_deletes_exactly_the_listed_seqs_across_gaps(box: Outbox) -> None:
    seqs = list(box.append_many(Channel.USAGE, 10, lambda s: b'{"seq":%d}' % s))
    acked = [seqs[0], seqs[1], seqs[2], seqs[5], seqs[9], seqs[9], seqs[9] + 1000]

    assert box.acknowledge(acked) == 5
    assert [r.seq for r in box.pending()] == [seqs[3], seqs[4], seqs[6], seqs[7], seqs[8]]


def test_appends_stay_durable_after_an_acknowledgement(box: Outbox) -> None:
    [seq] = box.append_many(Channel.USAGE, 1, lambda s: b'{"seq":%d}' % s)
    box.acknowledge([seq])

    (level,) = box._db.execute("PRAGMA synchronous").fetchone()  # noqa: SLF001 - the invariant
    assert level == SQLITE_FULL


# --- the in-flight window against a plain model ------------------------------------------------


class ModelInFlight:
    """The window's rules written the obvious way, scanning every record each time."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.sent_at: dict[int, tuple[float, int]] = {}

    def sent(self, seq: int, now: float) -> None:
        previous = self.sent_at.get(seq)
        self.sent_at[seq] = (now, previous[1] + 1 if previous else 0)

    def deadline(self, seq: int) -> float:
        at, resends = self.sent_at[seq]
        return at + self.timeout * min(1 << resends, 8)

    def due(self, now: float) -> list[int]:
        return sorted(seq for seq in self.sent_at if self.deadline(seq) <= now)

    def next_due_in(self, now: float) -> float | None:
        if not self.sent_at:
            return None
        return max(0.0, min(self.deadline(seq) for seq in self.sent_at) - now)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 30)),
        st.tuples(st.just("ack"), st.lists(st.integers(1, 30), max_size=5)),
        st.tuples(st.just("wait"), st.integers(0, 100)),
        st.tuples(st.just("resend_due"), st.just(0)),
        st.tuples(st.just("clear"), st.just(0)),
    ),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_in_flight_agrees_with_the_plain_model(ops: list[tuple[str, object]]) -> None:
    now = [1000.0]
    flight = InFlight(DeliverySettings(max_in_flight=100, ack_timeout_s=10), lambda: now[0])
    model = ModelInFlight(10)
    for op, arg in ops:
        if op == "send" and isinstance(arg, int):
            flight.sent(arg)
            model.sent(arg, now[0])
        elif op == "ack" and isinstance(arg, list):
            assert flight.acknowledge(arg) == len(set(arg) & set(model.sent_at))
            for seq in arg:
                model.sent_at.pop(seq, None)
        elif op == "wait" and isinstance(arg, int):
            now[0] += arg
        elif op == "resend_due":
            for seq in flight.due():
                flight.sent(seq)
                model.sent(seq, now[0])
        elif op == "clear":
            flight.clear()
            model.sent_at.clear()
        assert flight.due() == model.due(now[0])
        assert flight.next_due_in() == model.next_due_in(now[0])
        assert len(flight) == len(model.sent_at)
