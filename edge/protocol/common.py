"""Building blocks shared by every payload: the base struct, open enums and common value types."""

from __future__ import annotations

import enum
import functools
import logging
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Self

import msgspec

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""The payload schema version this build writes; readers accept all of SUPPORTED_VERSIONS."""

SUPPORTED_VERSIONS = frozenset({1})

Timestamp = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 time with offset")]
"""A device- or server-side time. Device clocks drift, so ordering always uses sequence numbers."""

TIMES_FROM = datetime(1970, 1, 1, tzinfo=UTC)
TIMES_BEFORE = datetime(2200, 1, 1, tzinfo=UTC)
"""A record's ``at`` lies between these: a wrong device clock passes (one that lost its battery
starts at 1970), an absurd one does not. Year 1 at +01:00 is year 0 in UTC, which no datetime
holds: storing it raised OverflowError on SQLite, and the ingest stopped on every redelivery."""

SEQ_MAX = 2**63 - 1
"""Sequence numbers and sessions fit a signed 64-bit column (PostgreSQL BIGINT, SQLite INTEGER)."""

Seq = Annotated[int, msgspec.Meta(ge=0, le=SEQ_MAX, description="Per-device sequence number")]

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
"""Device ids, claim ids and share groups: safe as one MQTT topic level and as a file name."""

DeviceId = Annotated[
    str,
    # msgspec searches with "$", which also matches before a final newline; the lookahead
    # refuses that newline and still reads the same in JSON Schema (ECMA-262) regexes.
    msgspec.Meta(pattern=rf"^{ID_PATTERN}$(?!\n)", description="Device id as in the topic"),
]


class OpenEnum(enum.StrEnum):
    """A string enum that decodes values it does not know to UNKNOWN instead of failing.

    A newer agent may send a value an older control plane has never heard of (and the reverse
    during a rollout); the message is still worth keeping, so the value is logged and mapped.
    """

    @classmethod
    def _missing_(cls, value: object) -> Self:
        _log_unknown_once(cls.__name__, value)
        return cls("unknown")


@functools.cache
def _log_unknown_once(enum_name: str, value: object) -> None:
    # Once per (enum, value): a fleet of newer agents would otherwise log on every message.
    log.info("unknown %s value %r read as UNKNOWN", enum_name, value)


class Payload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every payload: frozen, keyword-only, and versioned.

    Every field has a default so that old and new peers interoperate; unknown fields from a newer
    peer are dropped on decode.
    """

    v: int = 0
    """Schema version. Writers always send it; 0 (absent) reads as SCHEMA_VERSION."""

    required: ClassVar[tuple[str, ...]] = ()
    """Fields without which the payload means nothing; the codec refuses it if one is unset.

    Every field still has a default so that a struct can be built and evolved field by field;
    "required" is checked on decode against that default.
    """

    def __post_init__(self) -> None:
        # omit_defaults would drop a field equal to its default, and the version must always be
        # on the wire; so the default is the "absent" marker 0, replaced here on construction
        # and on decode alike.
        if self.v == 0:
            msgspec.structs.force_setattr(self, "v", SCHEMA_VERSION)


class Record(Payload, frozen=True, kw_only=True):
    """Base of every record the agent keeps in its outbox until the control plane acknowledges it.

    ``seq`` is one per-device sequence shared by usage, review and event records, so the ingest is
    idempotent on (device_id, seq). ``at`` is device time, kept for display; the control plane
    records its own receive time.
    """

    seq: Seq = 0
    at: Timestamp | None = None

    required: ClassVar[tuple[str, ...]] = ("seq",)

    def __post_init__(self) -> None:
        super().__post_init__()
        at = self.at
        if at is not None and at.tzinfo is not None and not TIMES_FROM <= at < TIMES_BEFORE:
            msg = f"at {at.isoformat()} is outside {TIMES_FROM.year}-{TIMES_BEFORE.year - 1}"
            raise ValueError(msg)
