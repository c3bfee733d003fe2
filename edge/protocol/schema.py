"""JSON Schema of every channel's payload, generated from the structs.

The output is committed as ``docs/protocol.schema.json`` for clients that are not written in
Python; a test fails when it drifts from the code. Regenerate it with ``REGENERATE``.
"""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any

import msgspec

from .channels import SPECS
from .codec import MAX_RECORDS_PER_MESSAGE
from .common import SCHEMA_VERSION, Payload
from .topics import CHANNELS_BY_DIRECTION, ROOT, Channel, Direction
from .usage import USAGE_TYPES, UsageEvent

REGENERATE = "python -m edge.protocol.schema > docs/protocol.schema.json"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
_REF_TEMPLATE = "#/$defs/{name}"
_SUBJECT = {
    Direction.UP: "{device_id}",
    Direction.DOWN: "{device_id}",
    Direction.CLAIM: "{claim_id}",
}

_DESCRIPTION = (
    "Payloads of the termfleet MQTT 5 topics; docs/protocol.md explains them. `channels` maps "
    "each channel (the last topic level) to its payload schema, with the topic, QoS and retain "
    "flag as x- annotations. Readers are more lenient than this schema: unknown fields are "
    'dropped, an enum value not listed reads as "unknown", an absent or 0 `v` reads as 1. They '
    "are also stricter: a required field left at its default (seq 0, an empty string) is refused "
    "as missing."
)


def topic_pattern(channel: Channel) -> str:
    """The channel's topic with a placeholder id level: termfleet/v1/up/{device_id}/usage."""
    direction = next(d for d, channels in CHANNELS_BY_DIRECTION.items() if channel in channels)
    return f"{ROOT}/{direction.value}/{_SUBJECT[direction]}/{channel.value}"


def wire_type(channel: Channel) -> Any:  # noqa: ANN401 - a type or a union of types, as msgspec takes
    """The type the codec decodes on ``channel``: usage is the tagged union of the known events."""
    return UsageEvent if channel is Channel.USAGE else SPECS[channel].payload


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) document with every channel's payload keyed by channel."""
    channels = list(SPECS)
    schemas, components = msgspec.json.schema_components(
        [wire_type(channel) for channel in channels], ref_template=_REF_TEMPLATE
    )
    _mark_required(components)
    for component in components.values():
        if "description" in component:  # docstrings, as written in the source
            component["description"] = inspect.cleandoc(component["description"])
    return {
        "$schema": DRAFT,
        "title": f"termfleet MQTT payloads, schema version {SCHEMA_VERSION}",
        "description": _DESCRIPTION,
        "channels": {
            channel.value: {
                **(_one_or_many(schema) if SPECS[channel].record else schema),
                "x-topic": topic_pattern(channel),
                "x-qos": SPECS[channel].qos,
                "x-retain": SPECS[channel].retain,
                "x-record": SPECS[channel].record,
            }
            for channel, schema in zip(channels, schemas, strict=True)
        },
        "$defs": components,
    }


def _one_or_many(schema: dict[str, Any]) -> dict[str, Any]:
    """A record channel's message: one record, or an array of 1 to MAX_RECORDS_PER_MESSAGE."""
    many = {"type": "array", "items": schema, "minItems": 1, "maxItems": MAX_RECORDS_PER_MESSAGE}
    return {"anyOf": [schema, many]}


def render() -> str:
    """The schema as committed: sorted keys, two-space indent, UTF-8 text, final newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _mark_required(components: dict[str, Any]) -> None:
    # msgspec lists no payload field as required because each has a default; the contract's
    # ``required`` fields must be present all the same, so say so where a validator can see it.
    payloads: list[type[Payload]] = [spec.payload for spec in SPECS.values()]
    payloads += USAGE_TYPES
    for cls in payloads:
        component = components.get(cls.__name__)
        if component is not None and cls.required:
            component["required"] = sorted({*component.get("required", ()), *cls.required})


def main() -> None:
    sys.stdout.buffer.write(render().encode())


if __name__ == "__main__":
    main()
