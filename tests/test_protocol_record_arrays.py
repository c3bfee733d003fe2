"""Record messages carry one record or an array of them; each record is decoded on its own."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    MAX_RECORDS_PER_MESSAGE,
    SPECS,
    Channel,
    PayloadError,
    PrintJob,
    Rating,
    RejectReason,
    Review,
    decode_records,
    encode,
    encode_records,
    probe_seq,
)

RECORD_CHANNELS = [c for c, spec in SPECS.items() if spec.record]


def test_a_single_record_is_a_list_of_one() -> None:
    record = PrintJob(seq=5, pages=2)
    [item] = decode_records(Channel.USAGE, encode(record))
    assert (item.payload, item.error, item.raw) == (record, None, encode(record))


def test_an_array_decodes_record_by_record_in_order() -> None:
    records = [PrintJob(seq=s, pages=1) for s in range(10, 20)]
    items = decode_records(Channel.USAGE, encode_records(records))
    assert [i.payload for i in items] == records
    assert [i.raw for i in items] == [encode(r) for r in records]


def test_encode_records_sends_a_lone_record_as_an_object() -> None:
    record = Review(seq=3, case_number="4401172026112200001", rating=Rating.VERY_SATISFIED)
    assert encode_records([record]) == encode(record)
    assert encode_records([record, record]).startswith(b"[")


def test_one_bad_record_is_refused_alone_with_its_seq_readable() -> None:
    data = b' [{"type":"print","seq":1,"pages":1}, {"type":"print","seq":2,"pages":"many"},\n'
    data += b'{"type":"print","pages":1}, 7, {"type":"print","seq":3,"pages":1}]'
    items = decode_records(Channel.USAGE, data)
    assert [i.payload.seq if i.payload else None for i in items] == [1, None, None, None, 3]
    reasons = [i.error.reason if i.error else None for i in items]
    assert reasons == [
        None,
        RejectReason.SCHEMA,
        RejectReason.MISSING_FIELD,
        RejectReason.SCHEMA,
        None,
    ]
    assert [probe_seq(i.raw) for i in items if i.error] == [2, None, None]
    assert json.loads(items[1].raw) == {"type": "print", "seq": 2, "pages": "many"}


@pytest.mark.parametrize(
    ("data", "reason", "says"),
    [
        (b"[]", RejectReason.SCHEMA, "an array of 0 records"),
        (b'[{"type":"print","seq":1}', RejectReason.JSON, "malformed JSON"),
        (
            b"[" + b",".join([b'{"type":"print","seq":1}'] * (MAX_RECORDS_PER_MESSAGE + 1)) + b"]",
            RejectReason.TOO_LARGE,
            f"send 1 to {MAX_RECORDS_PER_MESSAGE} per message",
        ),
        (b"[" + b" " * MAX_PAYLOAD_BYTES + b"]", RejectReason.TOO_LARGE, "exceeds"),
    ],
    ids=["empty", "truncated", "too-many", "too-large"],
)
def test_a_bad_array_is_refused_as_a_whole(data: bytes, reason: RejectReason, says: str) -> None:
    with pytest.raises(PayloadError, match=says) as refused:
        decode_records(Channel.USAGE, data)
    assert refused.value.reason is reason


def test_arrays_are_for_record_channels_only() -> None:
    with pytest.raises(ValueError, match="not a record channel"):
        decode_records(Channel.HEALTH, b"[]")


@settings(max_examples=300, deadline=None)
@given(channel=st.sampled_from(RECORD_CHANNELS), data=st.binary(max_size=200))
def test_decode_records_raises_nothing_but_payload_error(channel: Channel, data: bytes) -> None:
    try:
        items = decode_records(channel, data)
    except PayloadError as exc:
        reason = exc.reason
    else:
        assert items
        for item in items:
            assert (item.payload is None) != (item.error is None)
        return
    assert reason in RejectReason


@settings(max_examples=200, deadline=None)
@given(
    channel=st.sampled_from(RECORD_CHANNELS),
    elements=st.lists(
        st.one_of(
            st.dictionaries(st.sampled_from(["type", "seq", "v", "at", "pages"]), st.integers()),
            st.integers(),
            st.text(max_size=5),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_arrays_of_anything_json_give_one_item_per_element(
    channel: Channel, elements: list[object]
) -> None:
    items = decode_records(channel, json.dumps(elements).encode())
    assert len(items) == len(elements)
    assert [json.loads(i.raw) for i in items] == elements
