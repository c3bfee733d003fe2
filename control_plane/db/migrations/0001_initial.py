"""The schema of the walking skeleton: devices, their records, and rejected uplink messages.

Exactly what ``generate_schemas`` created before migrations existed, so that a database from
then is adopted at this migration (``control_plane.db.schema``) rather than created again.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    initial = True

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="Device",
            fields=[
                (
                    "device_id",
                    fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64),
                ),
                ("kind", fields.CharField(default="unknown", max_length=32)),
                ("presence", fields.CharField(default="unknown", max_length=16)),
                ("presence_session", fields.BigIntField(default=0)),
                ("agent_version", fields.CharField(default="", max_length=64)),
                ("first_seen", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("last_seen", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "last_health",
                    fields.JSONField(
                        null=True,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
            ],
            options={
                "table": "device",
                "app": "models",
                "pk_attr": "device_id",
                "table_description": "One terminal and its last known presence and health.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="RejectedMessage",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("topic", fields.CharField(max_length=255)),
                ("device_id", fields.CharField(null=True, max_length=64)),
                ("seq", fields.BigIntField(null=True)),
                ("reason", fields.CharField(max_length=32)),
                ("detail", fields.TextField(unique=False)),
                ("payload", fields.TextField(unique=False)),
                ("received_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "rejected_message",
                "app": "models",
                "pk_attr": "id",
                "table_description": (
                    "Uplink bytes that could not be stored as sent, kept for an operator"
                    " (dead letters)."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="StoredRecord",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("device_id", fields.CharField(max_length=64)),
                ("seq", fields.BigIntField()),
                ("channel", fields.CharField(max_length=16)),
                ("type", fields.CharField(max_length=32)),
                (
                    "device_time",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("received_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("payload", fields.TextField(unique=False)),
            ],
            options={
                "table": "record",
                "app": "models",
                "unique_together": (("device_id", "seq"),),
                "pk_attr": "id",
                "table_description": (
                    "One usage, review or event record, stored exactly once per (device_id, seq)."
                ),
            },
            bases=["Model"],
        ),
    ]
