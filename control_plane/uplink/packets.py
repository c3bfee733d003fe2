"""The MQTT 5 packets of the ingest's connection, written (OASIS MQTT 5.0, chapter 3).

Only what a subscriber that acknowledges by hand needs: CONNECT, SUBSCRIBE, UNSUBSCRIBE, PUBACK
for what it receives, PUBLISH at QoS 0 (the devices' ``Ack``) or 1 (the benchmark's simulated
terminals), PINGREQ and DISCONNECT. Pure functions; ``control_plane.uplink.reading`` reads what
the broker sends, and the socket is ``control_plane.uplink.connection``'s.
"""

from __future__ import annotations

import struct
from enum import IntEnum

PROTOCOL_NAME = b"\x00\x04MQTT"
PROTOCOL_LEVEL = 5
MAX_REMAINING_LENGTH = 268_435_455
"""Four bytes of variable byte integer (section 1.5.5)."""

PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"
"""Normal disconnection (reason 0, no properties): the broker discards the last will."""


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class Property(IntEnum):
    """The properties this connection sends or reads (section 2.2.2.2)."""

    SESSION_EXPIRY_INTERVAL = 0x11
    SERVER_KEEP_ALIVE = 0x13
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS = 0x23
    MAXIMUM_PACKET_SIZE = 0x27


class MalformedPacketError(ValueError):
    """The broker sent bytes that are not a valid MQTT 5 packet (or one we never asked for)."""


# --- encoding ---------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    """A variable byte integer (section 1.5.5)."""
    if not 0 <= value <= MAX_REMAINING_LENGTH:
        msg = f"{value} does not fit a variable byte integer"
        raise ValueError(msg)
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def utf8(text: str) -> bytes:
    """A UTF-8 encoded string with its two-byte length (section 1.5.4)."""
    data = text.encode()
    if len(data) > 0xFFFF:  # noqa: PLR2004 - the length prefix's range
        msg = f"string of {len(data)} bytes is longer than MQTT allows (65,535)"
        raise ValueError(msg)
    return struct.pack("!H", len(data)) + data


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + varint(len(body)) + body


def _properties(*pairs: tuple[Property, bytes]) -> bytes:
    data = b"".join(bytes((prop,)) + value for prop, value in pairs)
    return varint(len(data)) + data


def connect(  # noqa: PLR0913 - one parameter per field of the packet
    client_id: str,
    *,
    clean_start: bool,
    keepalive_s: int,
    session_expiry_s: int,
    receive_maximum: int,
    maximum_packet_size: int,
    username: str | None = None,
    password: str | None = None,
) -> bytes:
    flags = 0x02 if clean_start else 0
    payload = utf8(client_id)
    if username is not None:
        flags |= 0x80
        payload += utf8(username)
    if password is not None:
        flags |= 0x40
        payload += utf8(password)  # binary data has the same layout
    properties = _properties(
        (Property.SESSION_EXPIRY_INTERVAL, struct.pack("!I", session_expiry_s)),
        (Property.RECEIVE_MAXIMUM, struct.pack("!H", receive_maximum)),
        (Property.MAXIMUM_PACKET_SIZE, struct.pack("!I", maximum_packet_size)),
    )
    header = PROTOCOL_NAME + bytes((PROTOCOL_LEVEL, flags)) + struct.pack("!H", keepalive_s)
    return _packet(PacketType.CONNECT << 4, header + properties + payload)


def subscribe(packet_id: int, filters: list[str], qos: int) -> bytes:
    # Options byte: the maximum QoS; no-local, retain-as-published and retain handling all 0.
    entries = b"".join(utf8(topic_filter) + bytes((qos,)) for topic_filter in filters)
    return _packet(
        PacketType.SUBSCRIBE << 4 | 0x02, struct.pack("!H", packet_id) + b"\x00" + entries
    )


def unsubscribe(packet_id: int, filters: list[str]) -> bytes:
    entries = b"".join(utf8(topic_filter) for topic_filter in filters)
    return _packet(
        PacketType.UNSUBSCRIBE << 4 | 0x02, struct.pack("!H", packet_id) + b"\x00" + entries
    )


def puback(packet_id: int) -> bytes:
    """Success, in the short form: no reason code, no properties (section 3.4.2.1)."""
    return bytes((PacketType.PUBACK << 4, 2, packet_id >> 8, packet_id & 0xFF))


def publish_qos0(topic: str, payload: bytes, *, retain: bool = False) -> bytes:
    return _packet(PacketType.PUBLISH << 4 | int(retain), utf8(topic) + b"\x00" + payload)


def publish_qos1(topic: str, payload: bytes, packet_id: int, *, retain: bool = False) -> bytes:
    header = PacketType.PUBLISH << 4 | 0x02 | int(retain)
    return _packet(header, utf8(topic) + struct.pack("!H", packet_id) + b"\x00" + payload)
