"""The MQTT 5 packets the broker sends the ingest's connection, read (OASIS MQTT 5.0, chapter 3).

CONNACK, SUBACK/UNSUBACK, PUBLISH at QoS 0 or 1, PUBACK (for our own QoS 1 publishes), PINGRESP
and DISCONNECT, from a stream in chunks of any size. Any bytes fed to ``PacketReader`` give
packets or ``MalformedPacketError``, never another exception. ``packets`` writes what we send.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from .packets import MalformedPacketError, PacketType, Property

# How each property's value is laid out, by identifier (section 2.2.2.2's table).
_BYTE, _U16, _U32, _VARINT, _STRING, _BINARY, _PAIR = range(7)
_PROPERTY_LAYOUT = {
    0x01: _BYTE, 0x02: _U32, 0x03: _STRING, 0x08: _STRING, 0x09: _BINARY, 0x0B: _VARINT,
    0x11: _U32, 0x12: _STRING, 0x13: _U16, 0x15: _STRING, 0x16: _BINARY, 0x17: _BYTE,
    0x18: _U32, 0x19: _BYTE, 0x1A: _STRING, 0x1C: _STRING, 0x1F: _STRING, 0x21: _U16,
    0x22: _U16, 0x23: _U16, 0x24: _BYTE, 0x25: _BYTE, 0x26: _PAIR, 0x27: _U32, 0x28: _BYTE,
    0x29: _BYTE, 0x2A: _BYTE,
}  # fmt: skip


@dataclass(slots=True)
class Publish:
    """Not frozen: one is read per message, and a frozen ``__init__`` costs several times more."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int
    """0 at QoS 0."""


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    reason_code: int
    server_keepalive_s: int | None
    reason: str
    receive_maximum: int = 0xFFFF
    """How many QoS 1 messages the broker takes from us unacknowledged (absent: 65,535)."""


@dataclass(frozen=True, slots=True)
class PubAck:
    packet_id: int
    reason_code: int


@dataclass(frozen=True, slots=True)
class SubAck:
    """A SUBACK or an UNSUBACK: one reason code per filter, 0x80 and above a failure."""

    type: PacketType
    packet_id: int
    reason_codes: bytes


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason_code: int
    reason: str


@dataclass(frozen=True, slots=True)
class PingResp:
    pass


Packet = Publish | ConnAck | SubAck | PubAck | Disconnect | PingResp


class PacketReader:
    """Splits the broker's byte stream into packets, keeping an incomplete tail for later."""

    def __init__(self, maximum_packet_size: int) -> None:
        self._buffer = bytearray()
        self._maximum = maximum_packet_size

    def feed(self, data: bytes) -> list[Packet]:
        buffer = self._buffer
        buffer += data
        packets: list[Packet] = []
        pos = 0
        end = len(buffer)
        while end - pos >= 2:  # noqa: PLR2004 - the shortest packet
            header = _fixed_header(buffer, pos, end)
            if header is None:
                break
            first, start, length = header
            if start - pos + length > self._maximum:
                size = start - pos + length
                msg = f"a packet of {size} bytes is over our maximum of {self._maximum}"
                raise MalformedPacketError(msg)
            if end - start < length:
                break
            packets.append(_decode(first, bytes(buffer[start : start + length])))
            pos = start + length
        del buffer[:pos]
        return packets


def _fixed_header(buffer: bytearray, pos: int, end: int) -> tuple[int, int, int] | None:
    """(first byte, where the body starts, its length), or None while the length is incomplete."""
    length = 0
    shift = 0
    index = pos + 1
    while True:
        if index >= end:
            return None
        digit = buffer[index]
        index += 1
        length |= (digit & 0x7F) << shift
        if not digit & 0x80:
            return buffer[pos], index, length
        shift += 7
        if shift > 21:  # noqa: PLR2004 - four bytes at most (section 1.5.5)
            msg = "remaining length longer than four bytes"
            raise MalformedPacketError(msg)


def _decode(first: int, body: bytes) -> Packet:
    kind = first >> 4
    reader = _READERS.get(kind)
    if reader is None:
        name = PacketType(kind).name if kind else "reserved type 0"
        msg = f"unexpected {name} packet"
        raise MalformedPacketError(msg)
    try:
        return reader(first, body)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        msg = f"{PacketType(kind).name} packet cut short or garbled: {exc}"
        raise MalformedPacketError(msg) from exc


def _connack(_first: int, body: bytes) -> ConnAck:
    properties, _ = _read_properties(body, 2)
    keepalive = properties.get(Property.SERVER_KEEP_ALIVE)
    receive_maximum = properties.get(Property.RECEIVE_MAXIMUM, 0xFFFF)
    if receive_maximum == 0 or not isinstance(receive_maximum, int):
        msg = "CONNACK with a Receive Maximum of 0 (section 3.2.2.3.3)"
        raise MalformedPacketError(msg)
    return ConnAck(
        session_present=bool(body[0] & 1),
        reason_code=body[1],
        server_keepalive_s=keepalive if isinstance(keepalive, int) else None,
        reason=str(properties.get(Property.REASON_STRING, "")),
        receive_maximum=receive_maximum,
    )


def _puback(_first: int, body: bytes) -> PubAck:
    packet_id = struct.unpack_from("!H", body)[0]
    # The short form (section 3.4.2.1) leaves out the reason code: success.
    return PubAck(packet_id, body[_PUBACK_REASON] if len(body) > _PUBACK_REASON else 0)


def _suback(first: int, body: bytes) -> SubAck:
    kind = PacketType(first >> 4)
    _, pos = _read_properties(body, 2)
    codes = body[pos:]
    if not codes:
        msg = f"{kind.name} without reason codes"
        raise MalformedPacketError(msg)
    return SubAck(kind, struct.unpack_from("!H", body)[0], codes)


def _pingresp(_first: int, _body: bytes) -> PingResp:
    return PingResp()


def _disconnect(_first: int, body: bytes) -> Disconnect:
    if not body:
        return Disconnect(0, "")
    properties, _ = _read_properties(body, 1)
    return Disconnect(body[0], str(properties.get(Property.REASON_STRING, "")))


def _publish(first: int, body: bytes) -> Publish:
    qos = (first >> 1) & 0x03
    if qos > 1:
        # We subscribe at QoS 1 at most, so the broker never sends QoS 2 (or the invalid 3).
        msg = f"PUBLISH at QoS {qos}, above the subscription's QoS 1"
        raise MalformedPacketError(msg)
    topic_end = 2 + (body[0] << 8 | body[1])
    if topic_end > len(body):
        msg = "PUBLISH topic runs past the end of the packet"
        raise MalformedPacketError(msg)
    topic = body[2:topic_end].decode()
    pos = topic_end
    packet_id = 0
    if qos:
        packet_id = body[pos] << 8 | body[pos + 1]
        pos += 2
    if body[pos] == 0:  # the usual case: no properties
        pos += 1
    else:
        # The only property that changes how a PUBLISH reads is a topic alias, and we allow
        # none (CONNECT sends no Topic Alias Maximum): an empty topic is refused below.
        _, pos = _read_properties(body, pos)
    if not topic:
        msg = "PUBLISH without a topic"
        raise MalformedPacketError(msg)
    return Publish(topic, body[pos:], qos, bool(first & 0x01), packet_id)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift in (0, 7, 14, 21):
        digit = data[pos]
        pos += 1
        value |= (digit & 0x7F) << shift
        if not digit & 0x80:
            return value, pos
    msg = "variable byte integer longer than four bytes"
    raise MalformedPacketError(msg)


def _read_properties(data: bytes, pos: int) -> tuple[dict[int, int | str | bytes], int]:
    """The properties starting at ``pos`` (a missing block reads as none) and where they end."""
    if pos >= len(data):
        return {}, pos
    length, pos = _read_varint(data, pos)
    end = pos + length
    if end > len(data):
        msg = "properties run past the end of the packet"
        raise MalformedPacketError(msg)
    found: dict[int, int | str | bytes] = {}
    while pos < end:
        identifier = data[pos]
        layout = _PROPERTY_LAYOUT.get(identifier)
        pos += 1
        if layout is None:
            msg = f"unknown property 0x{identifier:02x}"
            raise MalformedPacketError(msg)
        value, pos = _read_value(data, pos, layout)
        if pos > end:
            msg = "a property runs past the end of the properties"
            raise MalformedPacketError(msg)
        found[identifier] = value
    return found, end


def _read_value(data: bytes, pos: int, layout: int) -> tuple[int | str | bytes, int]:
    if layout == _BYTE:
        return data[pos], pos + 1
    if layout == _U16:
        return struct.unpack_from("!H", data, pos)[0], pos + 2
    if layout == _U32:
        return struct.unpack_from("!I", data, pos)[0], pos + 4
    if layout == _VARINT:
        return _read_varint(data, pos)
    value, pos = _read_sized(data, pos)
    if layout == _PAIR:
        _, pos = _read_sized(data, pos)  # user properties: read past, not kept
    return (value.decode() if layout == _STRING else value), pos


def _read_sized(data: bytes, pos: int) -> tuple[bytes, int]:
    size = struct.unpack_from("!H", data, pos)[0]
    pos += 2
    if pos + size > len(data):
        msg = "a string runs past the end of the packet"
        raise MalformedPacketError(msg)
    return data[pos : pos + size], pos + size


_PUBACK_REASON = 2
"""Where a PUBACK's reason code is, after the packet id."""
_READERS: dict[int, Callable[[int, bytes], Packet]] = {
    PacketType.PUBLISH: _publish,
    PacketType.CONNACK: _connack,
    PacketType.PUBACK: _puback,
    PacketType.SUBACK: _suback,
    PacketType.UNSUBACK: _suback,
    PacketType.PINGRESP: _pingresp,
    PacketType.DISCONNECT: _disconnect,
}
