"""The codec's refusals: anything wrong is a PayloadError with a reason, and nothing else.

Round trips are in ``test_protocol_codec.py``.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    SPECS,
    Channel,
    OpenEnum,
    Payload,
    PayloadError,
    Presence,
    PresenceState,
    RejectReason,
    TopicError,
    UnsupportedVersionError,
    decode,
    decode_message,
)
from tests.support.protocol_payloads import (
    CHANNEL_OF,
    JSON_VALUES,
    MINIMAL,
    PAYLOAD_TYPES,
    type_id,
)

# Required fields.

REQUIRED_CASES = [(cls, name) for cls in MINIMAL for name in cls.required]


@pytest.mark.parametrize(("cls", "name"), REQUIRED_CASES, ids=type_id)
def test_absent_required_field_is_missing_field(cls: type[Payload], name: str) -> None:
    body = {k: v for k, v in MINIMAL[cls].items() if k != name}
    with pytest.raises(PayloadError, match=f"missing required field `{name}`") as caught:
        decode(CHANNEL_OF[cls], json.dumps(body).encode())
    assert caught.value.reason is RejectReason.MISSING_FIELD


def _default(cls: type[Payload], name: str) -> Any:  # noqa: ANN401 - any field's default
    return next(f.default for f in msgspec.structs.fields(cls) if f.name == name)


@pytest.mark.parametrize(
    ("cls", "name"),
    # An open enum's default is "unknown", which, sent, is a value (see UNKNOWN_ENUM_VALUES in
    # test_protocol_codec.py).
    [(c, n) for c, n in REQUIRED_CASES if not isinstance(_default(c, n), OpenEnum)],
    ids=type_id,
)
def test_required_field_at_its_default_is_missing_field(cls: type[Payload], name: str) -> None:
    body = {**MINIMAL[cls], name: _default(cls, name)}
    with pytest.raises(PayloadError, match=f"missing required field `{name}`") as caught:
        decode(CHANNEL_OF[cls], msgspec.json.encode(body))
    assert caught.value.reason is RejectReason.MISSING_FIELD


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
        Channel.CONTENT,
        b'{"targets":[{"name":"cards","version":1,"artifact":{"sha256":"ABC"}}]}',
        S,
        "$.targets[0].artifact.sha256",
    ),
    (Channel.CONTENT, b'{"targets":[{"name":"Cards","version":1}]}', S, "$.targets[0].name"),
    (Channel.CONTENT, b'{"targets":[{"name":"cards","version":0}]}', S, "$.targets[0].version"),
    (
        Channel.CONTENT,
        b'{"targets":[' + b",".join([b'{"name":"c","version":1}'] * 33) + b"]}",
        S,
        "length <= 32",
    ),
    (Channel.PACKAGES, b'{"packages":[{"name":"c","bytes_done":-1}]}', S, "$.packages[0]"),
    (Channel.PACKAGES, b'{"packages":[{"name":"c","installed":0}]}', S, "$.packages[0].installed"),
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


@pytest.mark.parametrize(("channel", "cls"), PAYLOAD_TYPES, ids=type_id)
def test_every_payload_refuses_a_nul_in_any_string(channel: Channel, cls: type[Payload]) -> None:
    """No PostgreSQL text holds U+0000: such a payload would fail every batch it came in."""
    body = MINIMAL[cls]
    for poisoned in ({**body, "note\u0000": 1}, {**body, "note": ["ok", {"x": "a\u0000b"}]}):
        with pytest.raises(PayloadError, match="NUL character") as caught:
            decode(channel, json.dumps(poisoned).encode())
        assert caught.value.reason is RejectReason.SCHEMA
    # An escaped backslash before "u0000" is text, not a NUL: it decodes as before.
    escaped = json.dumps({**body, "note": "C:\\u0000"}).encode()
    assert b"\\u0000" in escaped
    assert decode(channel, escaped) == decode(channel, json.dumps(body).encode())


@pytest.mark.parametrize(
    "usage_type", ["x" * 33, "fax sent", "传真", ""], ids=["too-long", "space", "cjk", "empty"]
)
def test_an_unknown_usage_type_must_be_a_storable_name(usage_type: str) -> None:
    data = json.dumps({"type": usage_type, "seq": 1}).encode()
    with pytest.raises(PayloadError) as caught:
        decode(Channel.USAGE, data)
    assert caught.value.reason in {RejectReason.SCHEMA, RejectReason.MISSING_FIELD}
    kept = decode(Channel.USAGE, json.dumps({"type": "x" * 32, "seq": 1}).encode())
    assert kept.original_type == "x" * 32  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("at", "kept"),
    [
        ("0001-01-01T00:00:00+01:00", False),  # year 0 in UTC: no datetime holds it
        ("1969-12-31T23:59:59Z", False),
        ("1970-01-01T00:00:00Z", True),  # a clock that lost its battery
        ("1970-01-01T07:59:59+08:00", False),  # before 1970 in UTC
        ("2199-12-31T23:59:59Z", True),
        ("2200-01-01T00:00:00Z", False),
        ("9999-12-31T23:59:59-01:00", False),
    ],
)
def test_a_records_time_must_be_plausible(at: str, kept: bool) -> None:  # noqa: FBT001
    for channel, body in [
        (Channel.USAGE, {"type": "print", "seq": 1, "at": at}),
        (Channel.REVIEW, {"seq": 1, "at": at, "case_number": "C-1", "rating": "satisfied"}),
        (Channel.EVENT, {"type": "reboot", "seq": 1, "at": at}),
    ]:
        data = json.dumps(body).encode()
        if kept:
            assert decode(channel, data).at is not None  # type: ignore[attr-defined]
            continue
        with pytest.raises(PayloadError, match="outside 1970-2199") as caught:
            decode(channel, data)
        assert caught.value.reason is RejectReason.SCHEMA


def test_what_the_control_plane_sums_is_bounded() -> None:
    pages = {"type": "print", "seq": 1, "pages": 10_000}
    assert decode(Channel.USAGE, json.dumps(pages).encode()).pages == 10_000  # type: ignore[attr-defined]
    with pytest.raises(PayloadError, match="pages") as caught:
        decode(Channel.USAGE, json.dumps({**pages, "pages": 10_001}).encode())
    assert caught.value.reason is RejectReason.SCHEMA
    reported = {"status": "applied", "version": 2**53}
    assert decode(Channel.REPORTED, json.dumps(reported).encode()).version == 2**53  # type: ignore[attr-defined]
    with pytest.raises(PayloadError, match="version"):
        decode(Channel.REPORTED, json.dumps({**reported, "version": 2**63 - 1}).encode())


def test_size_limit_is_inclusive() -> None:
    body = b'{"state":"online","session":1}'
    at_limit = body[:-1] + b" " * (MAX_PAYLOAD_BYTES - len(body)) + b"}"
    assert len(at_limit) == MAX_PAYLOAD_BYTES
    assert decode(Channel.PRESENCE, at_limit) == Presence(state=PresenceState.ONLINE, session=1)
    with pytest.raises(PayloadError, match=f"{MAX_PAYLOAD_BYTES + 1} bytes exceeds") as caught:
        decode(Channel.PRESENCE, at_limit + b" ")
    assert caught.value.reason is RejectReason.TOO_LARGE


def test_decode_message_checks_the_topic_first() -> None:
    message = decode_message(
        "termfleet/v1/up/kiosk-440117000-01/presence", b'{"v":1,"state":"online","session":8}'
    )
    assert message.topic.subject == "kiosk-440117000-01"
    assert message.payload == Presence(state=PresenceState.ONLINE, session=8)
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
