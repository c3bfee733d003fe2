"""Encode payloads to JSON bytes and decode bytes back, turning anything wrong into PayloadError."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, cast

import msgspec

from .channels import SPECS
from .common import SCHEMA_VERSION, SEQ_MAX, SUPPORTED_VERSIONS, OpenEnum, Payload, Record
from .errors import PayloadError, RejectReason, UnsupportedVersionError
from .topics import Channel, Topic, parse
from .usage import UNKNOWN_TYPE_PATTERN, USAGE_TYPES, UnknownUsage, UsageEvent

MAX_PAYLOAD_BYTES = 256 * 1024
"""Larger payloads are refused before parsing; content travels over HTTP, not MQTT."""
MAX_RECORDS_PER_MESSAGE = 100
"""A record message carries one record (a JSON object) or up to this many (a JSON array)."""
_JSON_SPACE = b" \t\r\n"

_encoder = msgspec.json.Encoder()


class _VersionProbe(msgspec.Struct):
    v: int = 1


class _UsageProbe(Record, frozen=True, kw_only=True):
    type: str = ""
    original_type: str = ""


_USAGE_TAGS = frozenset(cast("str", t.__struct_config__.tag) for t in USAGE_TYPES)
_UNKNOWN_USAGE_TAG = cast("str", UnknownUsage.__struct_config__.tag)
_version_probe = msgspec.json.Decoder(_VersionProbe)
_usage_probe = msgspec.json.Decoder(_UsageProbe)
_unknown_type = re.compile(UNKNOWN_TYPE_PATTERN)
_keys_probe = msgspec.json.Decoder(dict[str, msgspec.Raw])
_array_probe = msgspec.json.Decoder(list[msgspec.Raw])
_decoders: dict[Channel, msgspec.json.Decoder[Any]] = {
    channel: msgspec.json.Decoder(UsageEvent if channel is Channel.USAGE else spec.payload)
    for channel, spec in SPECS.items()
}


@dataclass(frozen=True, slots=True)
class Message:
    """A decoded message with the topic it arrived on."""

    topic: Topic
    payload: Payload


def encode(payload: Payload) -> bytes:
    """JSON bytes for a payload. Fields left at their default are omitted."""
    return _encoder.encode(payload)


def decode(channel: Channel, data: bytes | bytearray | memoryview) -> Payload:
    """Decode the payload of ``channel`` or raise PayloadError with a reason and a clear message."""
    if len(data) > MAX_PAYLOAD_BYTES:
        msg = f"{channel.value}: payload of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}"
        raise PayloadError(msg, RejectReason.TOO_LARGE)
    if not data:
        msg = f"{channel.value}: empty payload"
        raise PayloadError(msg, RejectReason.JSON)
    if _NUL_ESCAPE in (bytes(data) if isinstance(data, memoryview) else data) and _holds_nul(data):
        msg = f"{channel.value}: a string holds a NUL character (\\u0000), which cannot be stored"
        raise PayloadError(msg, RejectReason.SCHEMA)
    try:
        payload = cast("Payload", _decoders[channel].decode(data))
    except msgspec.ValidationError as exc:
        _raise_version_error_if_any(channel, data)
        unknown = _salvage_usage(data, exc) if channel is Channel.USAGE else None
        if unknown is None:
            msg = f"{channel.value}: {exc}"
            raise PayloadError(msg, RejectReason.SCHEMA) from None
        payload = unknown
    except msgspec.DecodeError as exc:
        msg = f"{channel.value}: malformed JSON: {exc}"
        raise PayloadError(msg, RejectReason.JSON) from None
    _check_version(channel, payload.v)
    _check_required(channel, payload, data)
    return payload


_NUL_ESCAPE = b"\\u0000"


def _holds_nul(data: bytes | bytearray | memoryview) -> bool:
    """Whether a string (key or value) of the JSON holds U+0000.

    No text column of PostgreSQL can hold one, so a payload with one would fail every batch it
    came in, again on each redelivery. (A NUL byte as such is not JSON and is refused as that;
    the fast check before this one is a substring search, which an escaped backslash fools.)
    """
    try:
        document = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return False  # not JSON: refused as that by the decoder
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            pending += value.keys()
            pending += value.values()
        elif isinstance(value, list):
            pending += value
    return False


# Not frozen: the ingest builds one per record, and a frozen dataclass's __init__ (an
# object.__setattr__ per field) costs several times as much.
@dataclass(slots=True)
class RecordItem:
    """One record of a record message: its own JSON, and the record or why it was refused."""

    raw: bytes
    payload: Record | None = None
    error: PayloadError | None = None


def decode_records(channel: Channel, data: bytes | bytearray | memoryview) -> list[RecordItem]:
    """The records of a record channel's message: one JSON object, or an array of them.

    Each record of an array is decoded on its own, so one bad record is refused alone and the
    others are kept. A message that is not JSON, too large, an empty array or an array of more
    than ``MAX_RECORDS_PER_MESSAGE`` raises PayloadError for the whole.
    """
    if not SPECS[channel].record:
        msg = f"{channel.value} is not a record channel"
        raise ValueError(msg)
    if not _is_array(data):
        try:
            return [RecordItem(bytes(data), cast("Record", decode(channel, data)))]
        except PayloadError as exc:
            return [RecordItem(bytes(data), error=exc)]
    if len(data) > MAX_PAYLOAD_BYTES:
        msg = f"{channel.value}: payload of {len(data)} bytes exceeds {MAX_PAYLOAD_BYTES}"
        raise PayloadError(msg, RejectReason.TOO_LARGE)
    try:
        elements = _array_probe.decode(data)
    except msgspec.DecodeError as exc:
        msg = f"{channel.value}: malformed JSON: {exc}"
        raise PayloadError(msg, RejectReason.JSON) from None
    if not 1 <= len(elements) <= MAX_RECORDS_PER_MESSAGE:
        msg = (
            f"{channel.value}: an array of {len(elements)} records; "
            f"send 1 to {MAX_RECORDS_PER_MESSAGE} per message"
        )
        raise PayloadError(msg, RejectReason.TOO_LARGE if elements else RejectReason.SCHEMA)
    items = []
    for element in elements:
        raw = bytes(element)
        try:
            items.append(RecordItem(raw, cast("Record", decode(channel, raw))))
        except PayloadError as exc:
            items.append(RecordItem(raw, error=exc))
    return items


def encode_records(records: Sequence[Record]) -> bytes:
    """JSON bytes of a record message: the record itself when alone, else an array."""
    if len(records) == 1:
        return _encoder.encode(records[0])
    return _encoder.encode(list(records))


def _is_array(data: bytes | bytearray | memoryview) -> bool:
    if data[:1] == b"{":  # the usual: one record, as a terminal sends it live
        return False
    head = bytes(data[:1])
    if head in _JSON_SPACE:  # rare: leading whitespace (or an empty payload)
        head = bytes(data).lstrip(_JSON_SPACE)[:1]
    return head == b"["


class _SeqProbe(msgspec.Struct):
    seq: Annotated[int, msgspec.Meta(ge=1, le=SEQ_MAX)] | None = None


_seq_probe = msgspec.json.Decoder(_SeqProbe)


def probe_seq(data: bytes | bytearray | memoryview) -> int | None:
    """The ``seq`` of a record that failed to decode, if it can be read at all.

    The control plane stores such a record raw and lists the seq in ``Ack.rejected``, so that
    the agent stops resending something that can never be stored.
    """
    try:
        return _seq_probe.decode(data).seq
    except msgspec.DecodeError:
        return None


def decode_message(topic: str, data: bytes | bytearray | memoryview) -> Message:
    """Parse the topic and decode the payload it promises; raises TopicError or PayloadError."""
    parsed = parse(topic)
    return Message(parsed, decode(parsed.channel, data))


def _check_version(channel: Channel, version: int) -> None:
    if version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
        msg = (
            f"{channel.value}: schema version {version} is not supported"
            f" (this build reads {supported})"
        )
        raise UnsupportedVersionError(msg)


def _check_required(
    channel: Channel, payload: Payload, data: bytes | bytearray | memoryview
) -> None:
    defaults = _required_defaults(type(payload))
    unset = [name for name, default in defaults if getattr(payload, name) == default]
    if not unset:
        return
    enums = {name for name in unset if isinstance(getattr(payload, name), OpenEnum)}
    if enums:
        # An open enum reads a value it does not know as UNKNOWN, its default; such a field was
        # sent all the same and the message is worth keeping (a newer agent's event type, a newer
        # control plane's command name), so only an absent one counts as missing.
        sent = _keys_probe.decode(data)
        unset = [name for name in unset if not (name in enums and name in sent)]
    if unset:
        msg = f"{channel.value}: missing required field `{unset[0]}` in {type(payload).__name__}"
        raise PayloadError(msg, RejectReason.MISSING_FIELD)


@functools.cache
def _required_defaults(cls: type[Payload]) -> tuple[tuple[str, Any], ...]:
    defaults = {f.name: f.default for f in msgspec.structs.fields(cls)}
    return tuple((name, defaults[name]) for name in cls.required)


def _raise_version_error_if_any(channel: Channel, data: bytes | bytearray | memoryview) -> None:
    # A payload of another schema version may fail validation for reasons that only confuse; the
    # version is the real cause, so name it.
    try:
        probe = _version_probe.decode(data)
    except msgspec.DecodeError:
        return
    _check_version(channel, probe.v or SCHEMA_VERSION)  # 0 is the "absent" marker, as in Payload


def _salvage_usage(
    data: bytes | bytearray | memoryview, exc: msgspec.ValidationError
) -> UnknownUsage | None:
    """An UnknownUsage for a well-formed record of a type this build does not know, else None."""
    try:
        probe = _usage_probe.decode(data)
    except msgspec.DecodeError:
        return None
    if not probe.type:
        msg = f"{Channel.USAGE.value}: missing required field `type` ({exc})"
        raise PayloadError(msg, RejectReason.MISSING_FIELD) from None
    if probe.type in _USAGE_TAGS:
        return None
    # An UnknownUsage passed on again (type "unknown") keeps the type it was first sent with.
    original = probe.original_type if probe.type == _UNKNOWN_USAGE_TAG else probe.type
    if not _unknown_type.match(original):
        msg = (
            f"{Channel.USAGE.value}: unknown type {original[:40]!r} is not a name of at most "
            f"32 letters, digits, '_', '.' or '-' ({exc})"
        )
        raise PayloadError(msg, RejectReason.SCHEMA) from None
    return UnknownUsage(v=probe.v, seq=probe.seq, at=probe.at, original_type=original)
