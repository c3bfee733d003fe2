"""Agent and peripheral inventory of each device (model, firmware version), and labels as rows.

Three new tables; nothing existing changes. The devices already there get their rows from
what they hold: the peripherals of ``device.last_health``, the agent version, and the labels of
``device.labels``, so that the tables agree with the devices from the start.
"""

import json
from collections.abc import Iterator, Sequence
from typing import Any

from tortoise import fields, migrations
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor

BACKFILL_CHUNK = 1000
SELECT_DEVICES = (
    'SELECT "device_id", "agent_version", "last_health", "labels", "last_seen",'
    ' COALESCE("last_seen", "first_seen") AS "since" FROM "device"'
    ' WHERE "device_id" > {param} ORDER BY "device_id" LIMIT {limit}'
)
# The column sizes below, as of this migration: values longer than a column are cut to fit.
NAME, KIND, MODEL, FIRMWARE, STATUS, REASON, AGENT_VERSION = 64, 32, 64, 64, 16, 64, 64


def _placeholders(dialect: str, row: int, width: int) -> str:
    if dialect == "postgres":
        first = row * width
        return "(" + ", ".join(f"${first + i + 1}" for i in range(width)) + ")"
    return "(" + ", ".join("?" * width) + ")"


async def _insert(
    client: BaseDBAsyncClient, dialect: str, table: str, columns: str, rows: Sequence[list[Any]]
) -> None:
    """One multi-row INSERT: SQL, not the models (docs/development.md says why)."""
    if not rows:
        return
    width = len(rows[0])
    values = ", ".join(_placeholders(dialect, i, width) for i in range(len(rows)))
    flat = [value for row in rows for value in row]
    sql = f'INSERT INTO "{table}" ({columns}) VALUES {values}'  # noqa: S608 - fixed names
    await client.execute_query(sql, flat)


def _json(value: object) -> object:
    """A JSON column as the driver returns it: text on SQLite, decoded on PostgreSQL."""
    if isinstance(value, str | bytes):
        return json.loads(value)
    return value


def _peripherals(device_id: str, health: object, since: object) -> Iterator[list[Any]]:
    """The peripheral rows of a stored heartbeat (its defaults left out, as msgspec writes it)."""
    if not isinstance(health, dict):
        return
    # A name is unique on a device (the protocol says so); the last of a repeated one wins.
    by_name = {
        str(item.get("name", ""))[:NAME]: item
        for item in health.get("peripherals") or ()
        if isinstance(item, dict)
    }
    for name, item in by_name.items():
        yield [
            device_id,
            name,
            str(item.get("kind", "unknown"))[:KIND],
            str(item.get("model", ""))[:MODEL],
            str(item.get("firmware", ""))[:FIRMWARE],
            str(item.get("state", "unknown"))[:STATUS],
            str(item.get("reason", ""))[:REASON],
            since,
            since,
        ]


async def backfill(_apps: object, schema_editor: BaseSchemaEditor) -> None:
    """Rows for the devices already stored, a chunk of devices at a time (keyset on the id)."""
    client, dialect = schema_editor.client, schema_editor.DIALECT
    param = "$1" if dialect == "postgres" else "?"
    after = ""
    while True:
        devices = await client.execute_query_dict(
            SELECT_DEVICES.format(param=param, limit=BACKFILL_CHUNK), [after]
        )
        if not devices:
            return
        agents, peripherals, labels = [], [], []
        for row in devices:
            health = _json(row["last_health"])
            if row["last_seen"] is not None or row["agent_version"] or health:
                agents.append(
                    [row["device_id"], row["agent_version"][:AGENT_VERSION], "", "", row["since"]]
                )
            peripherals += list(_peripherals(row["device_id"], health, row["since"]))
            stored_labels = _json(row["labels"])
            if isinstance(stored_labels, dict):
                labels += [[row["device_id"], k, v] for k, v in stored_labels.items()]
        await _insert(
            client,
            dialect,
            "device_agent",
            '"device_id", "agent_version", "os", "hardware_model", "changed_at"',
            agents,
        )
        # Several statements: PostgreSQL takes at most 32,767 parameters in one.
        for start in range(0, len(peripherals), BACKFILL_CHUNK):
            await _insert(
                client,
                dialect,
                "device_peripheral",
                '"device_id", "name", "kind", "model", "firmware", "status", "reason",'
                ' "status_since", "changed_at"',
                peripherals[start : start + BACKFILL_CHUNK],
            )
        for start in range(0, len(labels), BACKFILL_CHUNK):
            await _insert(
                client,
                dialect,
                "device_label",
                '"device_id", "key", "value"',
                labels[start : start + BACKFILL_CHUNK],
            )
        after = devices[-1]["device_id"]


class Migration(migrations.Migration):
    dependencies = [("models", "0003_auth")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="AgentInventory",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "device",
                    fields.OneToOneField(
                        "models.Device",
                        source_field="device_id",
                        db_constraint=True,
                        to_field="device_id",
                        related_name="agent_inventory",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("agent_version", fields.CharField(default="", max_length=64)),
                ("os", fields.CharField(default="", max_length=128)),
                ("hardware_model", fields.CharField(default="", max_length=64)),
                ("changed_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "device_agent",
                "app": "models",
                "pk_attr": "id",
                "table_description": (
                    "What runs on a terminal: its agent's version, operating system and hardware"
                    " model."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="DeviceLabel",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                (
                    "device",
                    fields.ForeignKeyField(
                        "models.Device",
                        source_field="device_id",
                        db_constraint=True,
                        to_field="device_id",
                        related_name="label_rows",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("key", fields.CharField(max_length=63)),
                ("value", fields.CharField(max_length=63)),
            ],
            options={
                "table": "device_label",
                "app": "models",
                "unique_together": (("device", "key"),),
                "indexes": [Index(fields=["key", "value", "device_id"])],
                "pk_attr": "id",
                "table_description": (
                    "One label of a device, repeated from ``device.labels`` for indexed label"
                    " filters."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="PeripheralInventory",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                (
                    "device",
                    fields.ForeignKeyField(
                        "models.Device",
                        source_field="device_id",
                        db_constraint=True,
                        to_field="device_id",
                        related_name="peripherals",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=64)),
                ("kind", fields.CharField(max_length=32)),
                ("model", fields.CharField(default="", max_length=64)),
                ("firmware", fields.CharField(default="", max_length=64)),
                ("status", fields.CharField(max_length=16)),
                ("reason", fields.CharField(default="", max_length=64)),
                ("status_since", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("changed_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "device_peripheral",
                "app": "models",
                "unique_together": (("device", "name"),),
                "indexes": [Index(fields=["kind", "status", "device_id"])],
                "pk_attr": "id",
                "table_description": (
                    "One peripheral of a terminal (printer0, pad0) as the device's last health"
                    " reported it."
                ),
            },
            bases=["Model"],
        ),
        ops.RunPython(backfill, ops.RunPython.noop),
    ]
