"""The codec: payloads survive a round trip; anything wrong is a PayloadError with a reason."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    SPECS,
    SUPPORTED_VERSIONS,
    Ack,
    ApplyStatus,
    CaseNotice,
    CatalogNotice,
    Channel,
    ClaimRequest,
    ClaimResponse,
    ClaimStatus,
    Command,
    CommandName,
    CommandResult,
    CommandStatus,
    ContentNotice,
    DesiredConfig,
    DeviceEvent,
    DeviceKind,
    EventType,
    Heartbeat,
    IdCardResult,
    NetworkType,
    OfflineReason,
    OpenEnum,
    Payload,
    PayloadError,
    PeripheralKind,
    PeripheralState,
    Presence,
    PresenceState,
    Rating,
    RejectReason,
    ReportedConfig,
    Review,
    ReviewChannel,
    SessionEndReason,
    Severity,
    TopicError,
    Transaction,
    TransactionOutcome,
    UnknownUsage,
    UnsupportedVersionError,
    decode,
    decode_message,
    encode,
    spec_for,
)
from edge.protocol.usage import USAGE_TYPES, UsageRecord

# Every concrete payload type with the channel it travels on; usage has one per event type, and
# UnknownUsage, which a reader that passes a record on may send again.
USAGE_PAYLOADS: tuple[type[UsageRecord], ...] = (*USAGE_TYPES, UnknownUsage)
PAYLOAD_TYPES: list[tuple[Channel, type[Payload]]] = [
    *((c, s.payload) for c, s in SPECS.items() if c is not Channel.USAGE),
    *((Channel.USAGE, t) for t in USAGE_PAYLOADS),
]


def _type_id(value: object) -> str:
    return value.__name__ if isinstance(value, type) else str(value)


# Strategies, derived from msgspec's own view of each struct, so a new field is covered.

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
AWARE_TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - bounds are naive by hypothesis' API
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=OFFSETS,
)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INT64 | FINITE | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
VERSIONS = st.sampled_from(sorted({0, *SUPPORTED_VERSIONS}))  # 0 is "absent", read as 1


def strategy_for(t: mi.Type) -> st.SearchStrategy[Any]:  # noqa: C901, PLR0911, PLR0912 - a case per kind
    """Values of a msgspec type that respect its constraints (bounds, patterns, time zones)."""
    match t:
        case mi.Metadata():
            return strategy_for(t.type)
        case mi.NoneType():
            return st.none()
        case mi.BoolType():
            return st.booleans()
        case mi.IntType():
            low = -(2**63) if t.ge is None else t.ge
            high = 2**63 - 1 if t.le is None else t.le
            return st.integers(min_value=low, max_value=high)
        case mi.FloatType():
            return st.floats(min_value=t.ge, max_value=t.le, allow_nan=False, allow_infinity=False)
        case mi.StrType(pattern=None):
            return st.text(max_size=24)
        case mi.StrType(pattern=str() as pattern):
            return st.from_regex(pattern, fullmatch=True)
        case mi.DateTimeType():
            return AWARE_TIMES
        case mi.EnumType():
            return st.sampled_from(list(t.cls))
        case mi.DictType():
            return st.dictionaries(strategy_for(t.key_type), strategy_for(t.value_type), max_size=4)
        case mi.VarTupleType():
            return st.lists(strategy_for(t.item_type), max_size=4).map(tuple)
        case mi.UnionType():
            return st.one_of(*(strategy_for(member) for member in t.types))
        case mi.StructType():
            return structs(t.cls)
        case mi.AnyType():
            return JSON_VALUES
    msg = f"no strategy for {t}: teach strategy_for about it"
    raise NotImplementedError(msg)


def _differs_from(default: object) -> Callable[[object], bool]:
    return lambda value: value != default


def structs(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    """``st.builds`` of a struct; required payload fields never hold their default."""
    required = getattr(cls, "required", ())
    fields: dict[str, st.SearchStrategy[Any]] = {}
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    for field in info.fields:
        strategy: st.SearchStrategy[Any]
        if field.name == "v" and issubclass(cls, Payload):
            strategy = VERSIONS
        else:
            strategy = strategy_for(field.type)
        if field.name in required:
            strategy = strategy.filter(_differs_from(field.default))
        fields[field.name] = strategy
    return st.builds(cls, **fields)


# Round trips.


@pytest.mark.parametrize(("channel", "cls"), PAYLOAD_TYPES, ids=_type_id)
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
    payload = decode(Channel.PRESENCE, b'{"session":2,"battery":{"percent":80},"mood":"good"}')
    assert payload == Presence(session=2)
    assert payload.v == 1


# Required fields.

# The smallest valid payload of each type: exactly its required fields (and usage's `type`).
MINIMAL: dict[type[Payload], dict[str, Any]] = {
    Presence: {"session": 1},
    Heartbeat: {"seq": 1},
    Review: {"seq": 1, "case_number": "44011720260302000315", "rating": "satisfied"},
    CaseNotice: {"case_number": "44011720260302000315"},
    ReportedConfig: {"status": "applied"},
    DesiredConfig: {"version": 1},
    CommandResult: {"command_id": "cmd-7f3a2c", "status": "succeeded"},
    Command: {"command_id": "cmd-7f3a2c", "name": "reboot"},
    CatalogNotice: {"catalog_id": "conghua-district-hall", "version": 1},
    ContentNotice: {"package_id": "guide-cards-rs", "version": 1},
    ClaimRequest: {"claim_code": "CH7K-4Q2M", "serial": "ZW21A0440117"},
    ClaimResponse: {"status": "refused"},
    Ack: {},
    DeviceEvent: {"seq": 1, "type": "agent_started"},
    **{t: {"type": t.__struct_config__.tag, "seq": 1} for t in USAGE_PAYLOADS},
    Transaction: {"type": "transaction", "seq": 1, "item_code": "440117-RS-0031"},
}
CHANNEL_OF = {cls: channel for channel, cls in PAYLOAD_TYPES}


def test_minimal_table_lists_every_payload_with_exactly_its_required_fields() -> None:
    assert set(MINIMAL) == set(CHANNEL_OF)
    for cls, body in MINIMAL.items():
        tagged = issubclass(cls, UsageRecord)
        assert set(body) - ({"type"} if tagged else set()) == set(cls.required), cls.__name__


@pytest.mark.parametrize("cls", list(MINIMAL), ids=_type_id)
def test_minimal_payload_decodes(cls: type[Payload]) -> None:
    decoded = decode(CHANNEL_OF[cls], json.dumps(MINIMAL[cls]).encode())
    assert type(decoded) is cls


REQUIRED_CASES = [(cls, name) for cls in MINIMAL for name in cls.required]


@pytest.mark.parametrize(("cls", "name"), REQUIRED_CASES, ids=_type_id)
def test_absent_required_field_is_missing_field(cls: type[Payload], name: str) -> None:
    body = {k: v for k, v in MINIMAL[cls].items() if k != name}
    with pytest.raises(PayloadError, match=f"missing required field `{name}`") as caught:
        decode(CHANNEL_OF[cls], json.dumps(body).encode())
    assert caught.value.reason is RejectReason.MISSING_FIELD


def _default(cls: type[Payload], name: str) -> Any:  # noqa: ANN401 - any field's default
    return next(f.default for f in msgspec.structs.fields(cls) if f.name == name)


@pytest.mark.parametrize(
    ("cls", "name"),
    # An open enum's default is "unknown", which, sent, is a value (see the enum table below).
    [(c, n) for c, n in REQUIRED_CASES if not isinstance(_default(c, n), OpenEnum)],
    ids=_type_id,
)
def test_required_field_at_its_default_is_missing_field(cls: type[Payload], name: str) -> None:
    body = {**MINIMAL[cls], name: _default(cls, name)}
    with pytest.raises(PayloadError, match=f"missing required field `{name}`") as caught:
        decode(CHANNEL_OF[cls], msgspec.json.encode(body))
    assert caught.value.reason is RejectReason.MISSING_FIELD


# Open enums.

UNKNOWN_ENUM_VALUES: list[tuple[Channel, dict[str, Any], str, OpenEnum]] = [
    (Channel.PRESENCE, {"session": 1, "state": "hibernating"}, "state", PresenceState.UNKNOWN),
    (Channel.PRESENCE, {"session": 1, "reason": "power_cut"}, "reason", OfflineReason.UNKNOWN),
    (Channel.PRESENCE, {"session": 1, "kind": "kiosk_v2"}, "kind", DeviceKind.UNKNOWN),
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


@pytest.mark.parametrize("enum_cls", _open_enums(), ids=_type_id)
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


@pytest.mark.parametrize("usage_type", USAGE_TYPES, ids=_type_id)
def test_every_usage_type_decodes_by_its_tag(usage_type: type[UsageRecord]) -> None:
    body = MINIMAL[usage_type]
    decoded = decode(Channel.USAGE, json.dumps(body).encode())
    assert type(decoded) is usage_type
    assert json.loads(encode(decoded))["type"] == body["type"]


# Refusals.

J, S, V, M = (
    RejectReason.JSON,
    RejectReason.SCHEMA,
    RejectReason.VERSION,
    RejectReason.MISSING_FIELD,
)
REFUSALS: list[tuple[Channel, bytes, RejectReason, str]] = [
    # not JSON
    (Channel.PRESENCE, b'{"session":1', J, "malformed JSON"),
    (Channel.HEALTH, b"online", J, "malformed JSON"),
    (Channel.USAGE, b"\xff\xfe{}", J, "malformed JSON"),
    (Channel.REVIEW, b"", J, "empty payload"),
    # JSON of the wrong shape
    (Channel.PRESENCE, b'{"session":"eight"}', S, "$.session"),
    (Channel.PRESENCE, b'{"session":-1}', S, ">= 0"),
    (Channel.PRESENCE, b'"online"', S, "Expected `object`"),
    (Channel.PRESENCE, b"null", S, "Expected `object`"),
    (Channel.HEALTH, b"[1,2]", S, "Expected `object`"),
    (Channel.HEALTH, b'{"seq":1,"cpu_percent":100.5}', S, "$.cpu_percent"),
    (Channel.HEALTH, b'{"seq":1,"at":"2026-03-02T10:00:00"}', S, "$.at"),  # no offset
    (Channel.HEALTH, b'{"seq":1,"peripherals":{"name":"printer0"}}', S, "$.peripherals"),
    (Channel.ACK, b'{"seqs":[1,-2]}', S, "$.seqs[1]"),
    (Channel.ACK, b'{"seqs":[' + b",".join([b"1"] * 10_001) + b"]}", S, "length <= 10000"),
    (Channel.USAGE, b'{"type":"print","seq":1,"pages":-1}', S, "$.pages"),
    (Channel.USAGE, b'{"type":"session_ended","seq":1,"duration_s":"long"}', S, "$.duration_s"),
    (Channel.USAGE, b'{"type":5,"seq":1}', S, "$.type"),
    (Channel.REVIEW, b'{"seq":1,"case_number":"x","rating":5}', S, "$.rating"),
    (
        Channel.CATALOG,
        b'{"catalog_id":"c","version":1,"artifact":{"sha256":"ABC"}}',
        S,
        "$.artifact.sha256",
    ),
    (Channel.COMMAND, b'{"command_id":"c","name":"reboot","args":{"force":true}}', S, "$.args"),
    (Channel.HEALTH, b'{"v":"1","seq":1}', S, "$.v"),
    (Channel.HEALTH, b'{"v":0,"seq":"x"}', S, "$.seq"),  # 0 reads as 1, so the body is to blame
    # versions this build does not read, named even when the body is wrong too
    (Channel.PRESENCE, b'{"v":2,"session":1}', V, "schema version 2 is not supported"),
    (Channel.PRESENCE, b'{"v":2,"session":"eight"}', V, "schema version 2 is not supported"),
    (Channel.USAGE, b'{"v":2,"type":"hologram","seq":"x"}', V, "schema version 2 is not supported"),
    (Channel.USAGE, b'{"v":2,"type":"print","seq":1}', V, "schema version 2 is not supported"),
    (Channel.HEALTH, b'{"v":-1,"seq":1}', V, "schema version -1 is not supported"),
    # missing fields beyond each payload's `required` (tested above)
    (Channel.USAGE, b'{"seq":1}', M, "missing required field `type`"),
    (Channel.USAGE, b'{"type":"","seq":1}', M, "missing required field `type`"),
    (Channel.USAGE, b'{"type":"face_check"}', M, "missing required field `seq`"),
    (Channel.USAGE, b'{"type":"face_check","seq":0}', M, "missing required field `seq`"),
    (Channel.EVENT, b'{"seq":1,"type":null}', S, "$.type"),
]


@pytest.mark.parametrize(
    ("channel", "data", "reason", "fragment"),
    REFUSALS,
    ids=[f"{c}-{r}-{d[:40]!r}" for c, d, r, _ in REFUSALS],
)
def test_refusal_has_reason_and_says_why(
    channel: Channel, data: bytes, reason: RejectReason, fragment: str
) -> None:
    with pytest.raises(PayloadError) as caught:
        decode(channel, data)
    assert caught.value.reason is reason, str(caught.value)
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(f"{channel.value}: ")
    assert isinstance(caught.value, UnsupportedVersionError) == (reason is V)


@pytest.mark.parametrize("channel", list(Channel), ids=str)
def test_every_channel_refuses_empty_bad_json_and_oversize(channel: Channel) -> None:
    for data, reason in [
        (b"", J),
        (b"{", J),
        (b"{" + b" " * MAX_PAYLOAD_BYTES, RejectReason.TOO_LARGE),
    ]:
        with pytest.raises(PayloadError) as caught:
            decode(channel, data)
        assert caught.value.reason is reason


def test_size_limit_is_inclusive() -> None:
    body = b'{"session":1}'
    at_limit = body[:-1] + b" " * (MAX_PAYLOAD_BYTES - len(body)) + b"}"
    assert len(at_limit) == MAX_PAYLOAD_BYTES
    assert decode(Channel.PRESENCE, at_limit) == Presence(session=1)
    with pytest.raises(PayloadError, match=f"{MAX_PAYLOAD_BYTES + 1} bytes exceeds") as caught:
        decode(Channel.PRESENCE, at_limit + b" ")
    assert caught.value.reason is RejectReason.TOO_LARGE


def test_decode_message_checks_the_topic_first() -> None:
    message = decode_message("termfleet/v1/up/kiosk-440117000-01/presence", b'{"v":1,"session":8}')
    assert message.topic.subject == "kiosk-440117000-01"
    assert message.payload == Presence(session=8)
    with pytest.raises(TopicError):
        decode_message("termfleet/v1/up/kiosk-440117000-01/selfie", b'{"v":1,"session":8}')
    with pytest.raises(PayloadError):
        decode_message("termfleet/v1/up/kiosk-440117000-01/presence", b"{")


# Nothing but PayloadError, whatever arrives.

FIELD_NAMES = sorted(
    {f.name for _, cls in PAYLOAD_TYPES for f in msgspec.structs.fields(cls)}
    | {"type", "original_type"}
)
JSON_OBJECTS = st.dictionaries(
    st.sampled_from(FIELD_NAMES) | st.text(max_size=6), JSON_VALUES, max_size=6
).map(lambda obj: json.dumps(obj).encode())


@pytest.mark.parametrize("channel", list(Channel), ids=str)
@settings(deadline=None)
@given(
    data=st.binary(max_size=300) | JSON_OBJECTS | JSON_VALUES.map(lambda v: json.dumps(v).encode())
)
def test_decode_raises_nothing_but_payload_error(channel: Channel, data: bytes) -> None:
    try:
        payload = decode(channel, data)
    except PayloadError as exc:
        reason = exc.reason
    else:
        assert isinstance(payload, SPECS[channel].payload)
        return
    assert reason in RejectReason


@settings(deadline=None)
@given(topic=st.text(max_size=60), data=st.binary(max_size=100))
def test_decode_message_raises_nothing_but_protocol_errors(topic: str, data: bytes) -> None:
    with contextlib.suppress(TopicError, PayloadError):
        decode_message(topic, data)
