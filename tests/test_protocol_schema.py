"""docs/protocol.schema.json is what edge.protocol.schema generates, and describes every channel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

from edge.protocol import MAX_RECORDS_PER_MESSAGE, SPECS, Channel, UnknownUsage
from edge.protocol.schema import REGENERATE, json_schema, render, topic_pattern
from edge.protocol.topics import parse
from edge.protocol.usage import USAGE_TYPES

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "protocol.schema.json"


def test_committed_schema_is_current() -> None:
    assert COMMITTED.exists(), f"docs/protocol.schema.json is missing; generate it: {REGENERATE}"
    assert COMMITTED.read_text(encoding="utf-8") == render(), (
        f"docs/protocol.schema.json is stale; regenerate it: {REGENERATE}"
    )


def test_module_prints_exactly_the_committed_file() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge.protocol.schema"],
        capture_output=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.stdout.decode("utf-8") == render()


def test_render_is_stable_sorted_json() -> None:
    text = render()
    assert text == render()
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_every_channel_has_its_payload_topic_qos_and_retain() -> None:
    schema = json_schema()
    assert set(schema["channels"]) == {c.value for c in Channel}
    for channel, spec in SPECS.items():
        entry = schema["channels"][channel.value]
        assert entry["x-qos"] == spec.qos
        assert entry["x-retain"] is spec.retain
        assert entry["x-record"] is spec.record
        concrete = entry["x-topic"].replace("{device_id}", "kiosk-440117000-01")
        assert parse(concrete.replace("{claim_id}", "c5e1a9f04b7d2e36")).channel is channel
        assert topic_pattern(channel) == entry["x-topic"]
        one = _one_record(entry) if spec.record else entry
        if channel is not Channel.USAGE:
            assert one["$ref"] == f"#/$defs/{spec.payload.__name__}"


def _one_record(entry: dict[str, Any]) -> dict[str, Any]:
    """A record channel takes one record or an array of 1 to MAX_RECORDS_PER_MESSAGE of them."""
    one, many = entry["anyOf"]
    assert many == {
        "type": "array",
        "items": one,
        "minItems": 1,
        "maxItems": MAX_RECORDS_PER_MESSAGE,
    }
    return cast("dict[str, Any]", one)


def test_usage_is_the_tagged_union_of_the_known_event_types() -> None:
    usage = _one_record(json_schema()["channels"][Channel.USAGE.value])
    mapping = usage["discriminator"]["mapping"]
    assert usage["discriminator"]["propertyName"] == "type"
    assert mapping == {t.__struct_config__.tag: f"#/$defs/{t.__name__}" for t in USAGE_TYPES}
    assert UnknownUsage.__name__ not in json_schema()["$defs"]  # a reader's, never sent


def test_required_fields_are_marked_and_every_ref_resolves() -> None:
    schema = json_schema()
    defs = schema["$defs"]
    for spec in SPECS.values():
        if spec.payload.__name__ in defs:
            assert set(spec.payload.required) <= set(defs[spec.payload.__name__]["required"])
    for usage_type in USAGE_TYPES:
        assert {"type", *usage_type.required} <= set(defs[usage_type.__name__]["required"])
    refs = {ref.removeprefix("#/$defs/") for ref in _values_of(schema, "$ref")}
    assert refs <= set(defs), f"dangling refs: {refs - set(defs)}"


def _values_of(node: object, key: str) -> list[str]:
    if isinstance(node, dict):
        found = [node[key]] if key in node else []
        return found + [v for child in node.values() for v in _values_of(child, key)]
    if isinstance(node, list):
        return [v for child in node for v in _values_of(child, key)]
    return []
