"""docs/protocol.md against the code, without a broker.

The examples must use each channel's QoS and retain flag and cover every channel and usage type;
the tables must name every field of every payload with its default, every enum value and every
channel, so the document cannot drift from the code. ``test_protocol_doc.py`` replays the
examples against a real broker.
"""

from __future__ import annotations

import enum
import json
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest

from edge.protocol import (
    MAX_PAYLOAD_BYTES,
    MAX_RECORDS_PER_MESSAGE,
    SPECS,
    Channel,
    RejectReason,
    UnknownUsage,
)
from edge.protocol import topics as wire
from edge.protocol.usage import USAGE_TYPES, UsageRecord
from tests.support.protocol_doc import (
    DOC,
    DOC_BROKER,
    EXAMPLES,
    PUBS,
    SUBS,
    TABLES,
    Example,
    code,
    decode_or_fail,
    example_id,
)

USAGE_PAYLOADS: tuple[type[UsageRecord], ...] = (*USAGE_TYPES, UnknownUsage)


# The examples say what the code says.


def test_every_example_is_a_complete_mosquitto_command() -> None:
    assert PUBS, "no mosquitto_pub example found in docs/protocol.md"
    assert SUBS, "no mosquitto_sub example found in docs/protocol.md"
    for example in EXAMPLES:
        assert example.tool in ("mosquitto_pub", "mosquitto_sub"), f"{example}: not replayable"
        assert (example.value("-h"), example.value("-p")) == DOC_BROKER, example
        assert example.value("-V") == "mqttv5", f"{example}: termfleet is MQTT 5"
        assert example.values("-t"), f"{example}: no topic"
    for example in SUBS:
        assert example.has("-v"), f"{example}: -v, so that each line shows its topic"
    for example in PUBS:
        assert len(example.values("-t")) == 1, f"{example}: one topic per publish"
        message = json.loads(example.value("-m") or "null")
        channel = wire.parse(example.value("-t") or "").channel
        if isinstance(message, list):
            assert SPECS[channel].record, f"{example}: only record channels take an array"
            assert 1 <= len(message) <= MAX_RECORDS_PER_MESSAGE, example
        objects = message if isinstance(message, list) else [message]
        for sent in objects:
            assert isinstance(sent, dict), f"{example}: a payload is a JSON object (or an array)"
            assert sent.get("v") == 1, f"{example}: writers always send v"


@pytest.mark.parametrize("example", PUBS, ids=example_id)
def test_pub_example_uses_its_channels_qos_and_retain(example: Example) -> None:
    spec = SPECS[wire.parse(example.value("-t") or "").channel]
    assert example.value("-q") == str(spec.qos), f"{example}: QoS is {spec.qos} in channels.py"
    assert example.has("-r") == spec.retain, f"{example}: retain is {spec.retain} in channels.py"


def _pub_payloads() -> list[tuple[Channel, Any]]:
    result: list[tuple[Channel, Any]] = []
    for example in PUBS:
        topic = example.value("-t") or ""
        payloads = decode_or_fail(topic, (example.value("-m") or "").encode(), example)
        result.extend((wire.parse(topic).channel, payload) for payload in payloads)
    return result


def test_every_channel_has_a_pub_example() -> None:
    missing = set(Channel) - {channel for channel, _ in _pub_payloads()}
    assert not missing, f"docs/protocol.md has no mosquitto_pub example for {sorted(missing)}"


def test_every_usage_event_type_has_a_pub_example() -> None:
    shown = {type(payload) for _, payload in _pub_payloads()}
    missing = {t.__name__ for t in USAGE_PAYLOADS if t not in shown}
    assert not missing, f"docs/protocol.md has no usage example of {sorted(missing)}"


def test_sub_examples_watch_a_device_and_the_shared_uplink() -> None:
    filters = {f for example in SUBS for f in example.values("-t")}
    device = "kiosk-440117000-01"
    assert wire.device_uplink_filter(device) in filters
    assert wire.device_downlink_filter(device) in filters
    assert any(f.startswith("$share/") and f.endswith(wire.all_uplink_filter()) for f in filters)


def test_who_subscribes_table_lists_the_ingest_subscriptions() -> None:
    row = next(line for line in DOC.splitlines() if line.startswith("| control plane"))
    shared_prefix = f"$share/{wire.INGEST_SHARE_GROUP}/termfleet/v1/up/+/"
    assert f"`{shared_prefix}<channel>`" in row
    for topic_filter in wire.ingest_filters():
        if topic_filter.startswith(shared_prefix):
            channel = topic_filter.removeprefix(shared_prefix)
            assert f"`{channel}`" in row, f"shared channel {channel} missing from: {row}"
        else:
            assert f"`{topic_filter}`" in row, f"{topic_filter} missing from: {row}"


def test_documented_size_limit_is_the_codec_limit() -> None:
    assert f"{MAX_PAYLOAD_BYTES:,} bytes" in DOC


# The tables say what the code says.


Structs = dict[str, type[msgspec.Struct]]
Enums = dict[str, type[enum.Enum]]


def _visit(t: mi.Type, structs: Structs, enums: Enums) -> None:
    match t:
        case mi.Metadata():
            _visit(t.type, structs, enums)
        case mi.StructType() if t.cls.__name__ not in structs:
            structs[t.cls.__name__] = t.cls
            for field in t.fields:
                _visit(field.type, structs, enums)
        case mi.EnumType():
            enums[t.cls.__name__] = t.cls
        case mi.UnionType():
            for member in t.types:
                _visit(member, structs, enums)
        case mi.VarTupleType() | mi.ListType():
            _visit(t.item_type, structs, enums)
        case mi.DictType():
            _visit(t.key_type, structs, enums)
            _visit(t.value_type, structs, enums)


def _documented_types() -> tuple[Structs, Enums]:
    """Every struct and enum a payload is made of, found by walking the payload types."""
    structs: Structs = {"UsageRecord": UsageRecord}
    enums: Enums = {"RejectReason": RejectReason}
    for cls in [*(s.payload for s in SPECS.values()), *USAGE_PAYLOADS]:
        _visit(mi.type_info(cls), structs, enums)
    return structs, enums


STRUCTS, ENUMS = _documented_types()


def _expected_rows(cls: type[msgspec.Struct]) -> dict[str, tuple[str | None, bool]]:
    """Each field's default (as JSON) and whether it is required, as the document must show."""
    instance = cls()
    required = set(getattr(cls, "required", ()))
    names = [f.name for f in msgspec.structs.fields(cls)]
    if cls is not UsageRecord and issubclass(cls, UsageRecord):
        names = [n for n in names if n not in {f.name for f in msgspec.structs.fields(UsageRecord)}]
        required -= {"seq"}  # documented once, in the UsageRecord table
    rows: dict[str, tuple[str | None, bool]] = {
        n: (msgspec.json.encode(getattr(instance, n)).decode(), n in required) for n in names
    }
    if cls is UsageRecord:
        rows["type"] = (None, True)  # the tag: no default, always sent
    return rows


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_struct_table_lists_every_field_with_its_default(name: str) -> None:
    assert name in TABLES, f"docs/protocol.md has no table under a heading #### `{name}`"
    documented = {code(row[0]): (code(row[2]), "**required**" in row[3]) for row in TABLES[name]}
    expected = _expected_rows(STRUCTS[name])
    missing, extra = set(expected) - set(documented), set(documented) - set(expected)
    assert not missing, f"`{name}` table lacks fields of the code: {sorted(missing)}"
    assert not extra, f"`{name}` table has fields the code does not: {sorted(extra, key=str)}"
    for field, (default, required) in expected.items():
        shown_default, shown_required = documented[field]
        if default is not None:
            assert shown_default == default, f"`{name}.{field}`: default is {default} in the code"
        assert shown_required == required, f"`{name}.{field}`: required is {required} in the code"


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enum_table_lists_every_value(name: str) -> None:
    assert name in TABLES, f"docs/protocol.md has no table under a heading #### `{name}`"
    documented = {code(row[0]) for row in TABLES[name]}
    documented = {"" if value == '""' else value for value in documented}
    expected = {member.value for member in ENUMS[name]}
    assert documented == expected, (
        f"`{name}` values differ from the code: missing {sorted(expected - documented)}"
        f", not in the code {sorted(documented - expected, key=str)}"
    )


def test_every_table_documents_something_in_the_code() -> None:
    stale = (
        set(TABLES)
        - set(STRUCTS)
        - set(ENUMS)
        - {"Channel table", "Who publishes and who subscribes"}
    )
    assert not stale, (
        f"docs/protocol.md has tables for what the code does not have: {sorted(stale)}"
    )


def test_channel_table_is_channels_py() -> None:
    direction_of = {c: d for d, cs in wire.CHANNELS_BY_DIRECTION.items() for c in cs}
    yes_no = {True: "yes", False: "no"}
    expected = {
        (
            channel.value,
            direction_of[channel].value,
            spec.payload.__name__,
            str(spec.qos),
            yes_no[spec.retain],
            yes_no[spec.record],
        )
        for channel, spec in SPECS.items()
    }
    documented = {tuple(cell.strip("`") for cell in row) for row in TABLES["Channel table"]}
    assert documented == expected, (
        f"channel table differs from channels.py: {documented ^ expected}"
    )
