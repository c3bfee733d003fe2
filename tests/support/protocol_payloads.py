"""Payload types, their smallest valid bodies, and hypothesis strategies for the codec tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import msgspec.inspect as mi
from hypothesis import strategies as st

from edge.protocol import (
    SPECS,
    SUPPORTED_VERSIONS,
    Ack,
    CaseNotice,
    Channel,
    ClaimRequest,
    ClaimResponse,
    Command,
    CommandResult,
    ContentNotice,
    DesiredConfig,
    DeviceEvent,
    Heartbeat,
    PackageReport,
    Payload,
    Presence,
    ReportedConfig,
    Review,
    Transaction,
    UnknownUsage,
)
from edge.protocol.usage import USAGE_TYPES, UsageRecord

# Every concrete payload type with the channel it travels on; usage has one per event type, and
# UnknownUsage, which a reader that passes a record on may send again.
USAGE_PAYLOADS: tuple[type[UsageRecord], ...] = (*USAGE_TYPES, UnknownUsage)
PAYLOAD_TYPES: list[tuple[Channel, type[Payload]]] = [
    *((c, s.payload) for c, s in SPECS.items() if c is not Channel.USAGE),
    *((Channel.USAGE, t) for t in USAGE_PAYLOADS),
]


def type_id(value: object) -> str:
    """A pytest id: a class by its name, anything else as str() gives it."""
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
STORABLE = st.characters(codec="utf-8", exclude_characters="\x00")
"""Any character but U+0000, which the contract refuses in every string (codec.py)."""


def texts(max_size: int) -> st.SearchStrategy[str]:
    return st.text(STORABLE, max_size=max_size)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INT64 | FINITE | texts(12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts(8), inner, max_size=3),
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
            return texts(min(24, t.max_length or 24))
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
        case mi.ListType():
            return st.lists(strategy_for(t.item_type), max_size=min(4, t.max_length or 4))
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


# The smallest valid payload of each type: exactly its required fields (and usage's `type`).
MINIMAL: dict[type[Payload], dict[str, Any]] = {
    Presence: {"state": "online", "session": 1},
    Heartbeat: {"seq": 1},
    Review: {"seq": 1, "case_number": "44011720260302000315", "rating": "satisfied"},
    CaseNotice: {"case_number": "44011720260302000315"},
    ReportedConfig: {"status": "applied"},
    DesiredConfig: {"version": 1},
    CommandResult: {"command_id": "cmd-7f3a2c", "status": "succeeded"},
    Command: {"command_id": "cmd-7f3a2c", "name": "reboot"},
    ContentNotice: {},
    PackageReport: {},
    ClaimRequest: {"claim_code": "CH7K-4Q2M", "serial": "ZW21A0440117"},
    ClaimResponse: {"status": "refused"},
    Ack: {},
    DeviceEvent: {"seq": 1, "type": "agent_started"},
    **{t: {"type": t.__struct_config__.tag, "seq": 1} for t in USAGE_PAYLOADS},
    Transaction: {"type": "transaction", "seq": 1, "item_code": "440117-RS-0031"},
}
CHANNEL_OF = {cls: channel for channel, cls in PAYLOAD_TYPES}
