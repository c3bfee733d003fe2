"""The ingest's MQTT 5 codec: packets built by hand from the specification, and hostile bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.uplink import packets
from control_plane.uplink.packets import MalformedPacketError, PacketType
from control_plane.uplink.reading import (
    ConnAck,
    Disconnect,
    Packet,
    PacketReader,
    PingResp,
    PubAck,
    Publish,
    SubAck,
)

MAXIMUM = 300_000


def frame(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + packets.varint(len(body)) + body


def publish_bytes(
    topic: str,
    payload: bytes,
    *,
    qos: int = 1,
    packet_id: int = 7,
    retain: bool = False,
    properties: bytes = b"\x00",
) -> bytes:
    body = packets.utf8(topic) + (struct.pack("!H", packet_id) if qos else b"") + properties
    return frame(0x30 | qos << 1 | int(retain), body + payload)


def read(data: bytes) -> list[Packet]:
    return PacketReader(MAXIMUM).feed(data)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (16_383, b"\xff\x7f"),
        (16_384, b"\x80\x80\x01"),
        (268_435_455, b"\xff\xff\xff\x7f"),
    ],
)
def test_variable_byte_integers_match_the_specification_table(value: int, encoded: bytes) -> None:
    """MQTT 5.0 section 1.5.5, table 1-1."""
    assert packets.varint(value) == encoded


def test_a_publish_at_qos_1_reads_with_its_topic_packet_id_and_payload() -> None:
    data = publish_bytes("termfleet/v1/up/kiosk-1/usage", b'{"seq":1}', packet_id=513, retain=True)

    assert read(data) == [
        Publish("termfleet/v1/up/kiosk-1/usage", b'{"seq":1}', qos=1, retain=True, packet_id=513)
    ]


def test_publish_properties_are_read_past_and_a_qos_0_publish_has_no_packet_id() -> None:
    # Message expiry (0x02, four bytes) and a user property (0x26, two strings).
    props = b"\x02\x00\x00\x00\x3c" + b"\x26" + packets.utf8("k") + packets.utf8("v")
    data = publish_bytes("t/1", b"hello", qos=0, properties=packets.varint(len(props)) + props)

    assert read(data) == [Publish("t/1", b"hello", qos=0, retain=False, packet_id=0)]


def test_packets_split_anywhere_read_the_same_as_whole() -> None:
    stream = b"".join(publish_bytes(f"t/{n}", b"x" * n, packet_id=n + 1) for n in range(200))
    whole = read(stream)

    for chunk in (1, 2, 3, 7, 64, 1000):
        reader = PacketReader(MAXIMUM)
        pieces = [stream[i : i + chunk] for i in range(0, len(stream), chunk)]
        assert [p for piece in pieces for p in reader.feed(piece)] == whole
    assert len(whole) == 200


def test_control_packets_read_with_their_reason_codes() -> None:
    keepalive = b"\x06\x13\x00\x0a\x21\x00\x14"  # Server Keep Alive 10, Receive Maximum 20
    reason = b"\x1f" + packets.utf8("not allowed")
    stream = (
        frame(0x20, b"\x01\x00" + keepalive)
        + frame(0x40, b"\x00\x07")
        + frame(0x40, b"\x00\x08\x97\x00")
        + frame(0x90, b"\x00\x05\x00\x01\x87")
        + frame(0xB0, b"\x00\x06\x00\x00")
        + b"\xd0\x00"
        + frame(0xE0, b"\x8e" + packets.varint(len(reason)) + reason)
        + b"\xe0\x00"
    )

    assert read(stream) == [
        ConnAck(
            session_present=True,
            reason_code=0,
            server_keepalive_s=10,
            reason="",
            receive_maximum=20,
        ),
        PubAck(7, 0),  # the short form: success
        PubAck(8, 0x97),  # quota exceeded
        SubAck(PacketType.SUBACK, 5, b"\x01\x87"),
        SubAck(PacketType.UNSUBACK, 6, b"\x00"),
        PingResp(),
        Disconnect(0x8E, "not allowed"),
        Disconnect(0, ""),
    ]


def test_what_we_send_is_laid_out_as_the_specification_says() -> None:
    connect = packets.connect(
        "cp-1",
        clean_start=False,
        keepalive_s=30,
        session_expiry_s=600,
        receive_maximum=1000,
        maximum_packet_size=MAXIMUM,
        username="ingest",
        password="s3cret",
    )
    properties = b"\x0d\x11\x00\x00\x02\x58\x21\x03\xe8\x27\x00\x04\x93\xe0"
    body = b"\x00\x04MQTT\x05\xc0\x00\x1e" + properties + b"\x00\x04cp-1"
    assert connect == frame(0x10, body + b"\x00\x06ingest\x00\x06s3cret")
    assert packets.subscribe(9, ["a/+", "b/#"], 1) == frame(
        0x82, b"\x00\x09\x00" + b"\x00\x03a/+\x01" + b"\x00\x03b/#\x01"
    )
    assert packets.unsubscribe(10, ["a/+"]) == frame(0xA2, b"\x00\x0a\x00\x00\x03a/+")
    assert packets.puback(0x1234) == b"\x40\x02\x12\x34"
    assert packets.publish_qos0("d/ack", b"{}") == b"\x30\x0a\x00\x05d/ack\x00{}"
    assert packets.publish_qos1("u/x", b"{}", 0x0102) == b"\x32\x0a\x00\x03u/x\x01\x02\x00{}"


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"\x30\xff\xff\xff\xff\x01", "longer than four bytes"),
        (publish_bytes("t", b"", qos=2), "QoS 2"),
        (publish_bytes("", b"x"), "without a topic"),
        (frame(0x32, b"\x00\x09t"), "runs past the end"),
        (publish_bytes("t", b"", properties=b"\x02\x99\x00"), "unknown property 0x99"),
        (publish_bytes("t", b"", properties=b"\x05\x02\x00"), "run past the end"),
        (frame(0x90, b"\x00\x05\x00"), "without reason codes"),
        (frame(0x20, b"\x00"), "cut short"),
        (frame(0x20, b"\x00\x00\x03\x21\x00\x00"), "Receive Maximum of 0"),
        (frame(0x40, b"\x00"), "PUBACK packet cut short"),
        (frame(0x10, b"\x00"), "unexpected CONNECT"),
        (b"\x00\x00", "reserved type 0"),
        (frame(0x30, b"\x00\x01\xff\x00"), "garbled"),
    ],
)
def test_malformed_packets_are_refused_with_what_is_wrong(data: bytes, complaint: str) -> None:
    with pytest.raises(MalformedPacketError, match=complaint):
        read(data)


def test_a_packet_over_the_maximum_is_refused_before_it_is_buffered() -> None:
    reader = PacketReader(100)
    header = b"\x30" + packets.varint(1_000_000)

    with pytest.raises(MalformedPacketError, match="over our maximum of 100"):
        reader.feed(header)


def test_strings_and_lengths_out_of_range_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError, match="longer than MQTT allows"):
        packets.utf8("x" * 70_000)
    with pytest.raises(ValueError, match="does not fit"):
        packets.varint(268_435_456)


@given(st.binary(max_size=512), st.integers(min_value=1, max_value=64))
def test_any_bytes_give_packets_or_a_clear_error(data: bytes, chunk: int) -> None:
    reader = PacketReader(1024)
    try:
        for start in range(0, len(data), chunk):
            reader.feed(data[start : start + chunk])
    except MalformedPacketError:
        pass


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=40).filter(lambda t: len(t.encode()) < 200),
            st.binary(max_size=300),
            st.integers(min_value=0, max_value=1),
            st.integers(min_value=1, max_value=0xFFFF),
            st.booleans(),
        ),
        max_size=20,
    )
)
def test_any_publishes_read_back_as_sent(
    messages: list[tuple[str, bytes, int, int, bool]],
) -> None:
    stream = b"".join(
        publish_bytes(topic, payload, qos=qos, packet_id=pid, retain=retain)
        for topic, payload, qos, pid, retain in messages
    )

    assert read(stream) == [
        Publish(topic, payload, qos, retain, pid if qos else 0)
        for topic, payload, qos, pid, retain in messages
    ]
