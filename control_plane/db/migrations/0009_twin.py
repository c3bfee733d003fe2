"""The device twin: config layers, a revision counter, each device's desired and reported config.

Three new tables; nothing existing changes.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0008_content")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="ConfigLayer",
            fields=[
                (
                    "id",
                    fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64),
                ),
                ("scope_kind", fields.CharField(max_length=8)),
                (
                    "scope",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("priority", fields.IntField(default=0)),
                (
                    "values",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("description", fields.CharField(default="", max_length=255)),
                ("revision", fields.BigIntField()),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("updated_by", fields.CharField(max_length=128)),
            ],
            options={
                "table": "config_layer",
                "app": "models",
                "pk_attr": "id",
                "table_description": (
                    "A set of config values for every device in a scope,"
                    " as control_plane.twin.layers has it."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ConfigRevision",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("revision", fields.BigIntField(default=0)),
            ],
            options={
                "table": "config_revision",
                "app": "models",
                "pk_attr": "id",
                "table_description": (
                    "One row: the counter every layer change raises,"
                    " which desired versions are taken from."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="DeviceTwin",
            fields=[
                (
                    "device_id",
                    fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64),
                ),
                ("desired_version", fields.BigIntField(default=0)),
                (
                    "desired_values",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "desired_sources",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "layer_since",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("issued_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("published_version", fields.BigIntField(default=0)),
                ("reported_version", fields.BigIntField(default=0)),
                ("reported_status", fields.CharField(default="", max_length=16)),
                ("reported_error", fields.TextField(default="", unique=False)),
                (
                    "reported_values",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "reported_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "received_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "device_twin",
                "app": "models",
                "pk_attr": "device_id",
                "table_description": (
                    "The twin of one device: the desired config last issued to it"
                    " and the config it reported."
                ),
            },
            bases=["Model"],
        ),
    ]
