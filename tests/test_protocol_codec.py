"""The codec's round trips: payloads survive encode and decode, and open enums read strangers.

Refusals (a PayloadError with a reason) are in ``test_protocol_codec_refusals.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.protocol import (
    ApplyStatus,
    Channel,
    ClaimRequest,
    ClaimStatus,
    CommandName,
    CommandStatus,
    DeviceKind,
    EventType,
    IdCardResult,
    NetworkType,
    OfflineReason,
    OpenEnum,
    Payload,
    PeripheralKind,
    PeripheralState,
    Presence,
    PresenceState,
    Rating,
    Review,
    ReviewChannel,
    SessionEndReason,
    Severity,
    TransactionOutcome,
    UnknownUsage,
    decode,
    encode,
    spec_for,
)
from edge.protocol.usage import USAGE_TYPES, UsageRecord
from tests.support.protocol_payloads import CHANNEL_OF, MINIMAL, PAYLOAD_TYPES, structs, type_id

# Round trips.


@pytest.mark.parametrize(("channel", "cls"), PAYLOAD_TYPES, ids=type_id)
@settings(deadline=None)
@given(data=st.data())
def test_encode_then_decode_gives_the_original(
    channel: Channel, cls: type[Payload], data: st.DataObject
) -> None:
    payload = data.draw(structs(cls))
    wire_bytes = encode(payload)
    assert decode(channel, wire_bytes) == payload
    assert spec_for(payload)[0] is channel
    assert json.loads(wire_bytes)["v"] == payload.v == 1  # always on the wire


def test_minimal_encoding_is_the_version_and_what_was_set() -> None:
    assert encode(Presence(session=1)) == b'{"v":1,"session":1}'
    assert encode(Presence(session=1, v=0)) == b'{"v":1,"session":1}'


def test_bytearray_and_memoryview_decode_like_bytes() -> None:
    data = b'{"v":1,"session":3,"state":"online"}'
    expected = Presence(session=3, state=PresenceState.ONLINE)
    assert decode(Channel.PRESENCE, bytearray(data)) == expected
    assert decode(Channel.PRESENCE, memoryview(data)) == expected


def test_absent_version_reads_as_1_and_unknown_fields_are_dropped() -> None:
    payload = decode(
        Channel.PRESENCE, b'{"state":"online","session":2,"battery":{"percent":80},"mood":"good"}'
    )
    assert payload == Presence(state=PresenceState.ONLINE, session=2)
    assert payload.v == 1


# The smallest valid payloads (MINIMAL).


def test_minimal_table_lists_every_payload_with_exactly_its_required_fields() -> None:
    assert set(MINIMAL) == set(CHANNEL_OF)
    for cls, body in MINIMAL.items():
        tagged = issubclass(cls, UsageRecord)
        assert set(body) - ({"type"} if tagged else set()) == set(cls.required), cls.__name__


@pytest.mark.parametrize("cls", list(MINIMAL), ids=type_id)
def test_minimal_payload_decodes(cls: type[Payload]) -> None:
    decoded = decode(CHANNEL_OF[cls], json.dumps(MINIMAL[cls]).encode())
    assert type(decoded) is cls


# Open enums.

UNKNOWN_ENUM_VALUES: list[tuple[Channel, dict[str, Any], str, OpenEnum]] = [
    (Channel.PRESENCE, {"session": 1, "state": "hibernating"}, "state", PresenceState.UNKNOWN),
    (
        Channel.PRESENCE,
        {"state": "offline", "session": 1, "reason": "power_cut"},
        "reason",
        OfflineReason.UNKNOWN,
    ),
    (
        Channel.PRESENCE,
        {"state": "online", "session": 1, "kind": "kiosk_v2"},
        "kind",
        DeviceKind.UNKNOWN,
    ),
    (Channel.HEALTH, {"seq": 1, "network": {"type": "6g"}}, "network.type", NetworkType.UNKNOWN),
    (
        Channel.HEALTH,
        {"seq": 1, "peripherals": [{"name": "fp0", "kind": "fingerprint_reader"}]},
        "peripherals.0.kind",
        PeripheralKind.UNKNOWN,
    ),
    (
        Channel.HEALTH,
        {"seq": 1, "peripherals": [{"name": "printer0", "state": "warming_up"}]},
        "peripherals.0.state",
        PeripheralState.UNKNOWN,
    ),
    (
        Channel.USAGE,
        {"type": "transaction", "seq": 1, "item_code": "440117-SW-0007", "outcome": "refunded"},
        "outcome",
        TransactionOutcome.UNKNOWN,
    ),
    (
        Channel.USAGE,
        {"type": "id_card_read", "seq": 1, "result": "expired_card"},
        "result",
        IdCardResult.UNKNOWN,
    ),
    (
        Channel.USAGE,
        {"type": "session_ended", "seq": 1, "reason": "power_loss"},
        "reason",
        SessionEndReason.UNKNOWN,
    ),
    (
        Channel.REVIEW,
        {**MINIMAL[Review], "channel": "wechat"},
        "channel",
        ReviewChannel.UNKNOWN,
    ),
    (
        Channel.REVIEW,
        {**MINIMAL[Review], "indicators": {"attitude": "warm"}},
        "indicators.attitude",
        Rating.UNKNOWN,
    ),
    (
        Channel.EVENT,
        {"seq": 1, "type": "agent_started", "severity": "fatal"},
        "severity",
        Severity.UNKNOWN,
    ),
    (
        Channel.EVENT,
        {"seq": 1, "type": "agent_started", "peripheral_state": "melted"},
        "peripheral_state",
        PeripheralState.UNKNOWN,
    ),
    (
        Channel.REQUEST,
        {**MINIMAL[ClaimRequest], "kind": "tablet"},
        "kind",
        DeviceKind.UNKNOWN,
    ),
    # Required enum fields: a value this build does not know is still a value, so kept.
    (Channel.EVENT, {"seq": 1, "type": "printer_jammed"}, "type", EventType.UNKNOWN),
    (Channel.EVENT, {"seq": 1, "type": "unknown"}, "type", EventType.UNKNOWN),
    (Channel.REVIEW, {**MINIMAL[Review], "rating": "superb"}, "rating", Rating.UNKNOWN),
    (
        Channel.COMMAND,
        {"command_id": "c1", "name": "format_disk"},
        "name",
        CommandName.UNKNOWN,
    ),
    (
        Channel.RESULT,
        {"command_id": "c1", "status": "queued"},
        "status",
        CommandStatus.UNKNOWN,
    ),
    (Channel.REPORTED, {"status": "rolling_back"}, "status", ApplyStatus.UNKNOWN),
    (Channel.RESPONSE, {"status": "deferred"}, "status", ClaimStatus.UNKNOWN),
]


def _attribute(obj: Any, path: str) -> Any:  # noqa: ANN401 - walks any payload
    for part in path.split("."):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


@pytest.mark.parametrize(
    ("channel", "body", "path", "expected"),
    UNKNOWN_ENUM_VALUES,
    ids=[f"{c}-{p}-{i}" for i, (c, _, p, _) in enumerate(UNKNOWN_ENUM_VALUES)],
)
def test_unknown_enum_value_reads_as_unknown(
    channel: Channel, body: dict[str, Any], path: str, expected: OpenEnum
) -> None:
    assert _attribute(decode(channel, json.dumps(body).encode()), path) is expected


def _open_enums() -> list[type[OpenEnum]]:
    found: list[type[OpenEnum]] = []
    pending: list[type[OpenEnum]] = [OpenEnum]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


@pytest.mark.parametrize("enum_cls", _open_enums(), ids=type_id)
def test_every_open_enum_has_unknown_and_maps_strangers_to_it(enum_cls: type[OpenEnum]) -> None:
    unknown = enum_cls("unknown")
    assert enum_cls("value-from-the-future") is unknown
    assert msgspec.json.decode(b'"value-from-the-future"', type=enum_cls) is unknown


# Usage types.


def test_unknown_usage_type_is_kept_with_its_original_type() -> None:
    data = (
        b'{"v":1,"type":"face_check","seq":30516,"at":"2026-03-02T09:20:55+08:00","result":"match"}'
    )
    payload = decode(Channel.USAGE, data)
    at = datetime(2026, 3, 2, 1, 20, 55, tzinfo=UTC)
    assert payload == UnknownUsage(seq=30516, at=at, original_type="face_check")
    # passed on again, it keeps the type it was first sent with
    assert decode(Channel.USAGE, encode(payload)) == payload


@pytest.mark.parametrize("usage_type", USAGE_TYPES, ids=type_id)
def test_every_usage_type_decodes_by_its_tag(usage_type: type[UsageRecord]) -> None:
    body = MINIMAL[usage_type]
    decoded = decode(Channel.USAGE, json.dumps(body).encode())
    assert type(decoded) is usage_type
    assert json.loads(encode(decoded))["type"] == body["type"]
