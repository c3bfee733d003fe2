"""Provisioning: claim tokens, and each device's broker credential generation and self-test.

One new table and four new device columns with database defaults; existing devices have no
broker credentials yet (generation 0) until they enroll.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0006_rollups")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="ClaimToken",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("code_hash", fields.CharField(unique=True, max_length=64)),
                ("prefix", fields.CharField(max_length=8)),
                ("batch", fields.CharField(default="", max_length=64)),
                (
                    "site",
                    fields.ForeignKeyField(
                        "models.Site",
                        source_field="site_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="claim_tokens",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "window",
                    fields.ForeignKeyField(
                        "models.ServiceWindow",
                        source_field="window_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="claim_tokens",
                        on_delete=OnDelete.SET_NULL,
                    ),
                ),
                (
                    "device",
                    fields.ForeignKeyField(
                        "models.Device",
                        source_field="device_id",
                        null=True,
                        db_constraint=True,
                        to_field="device_id",
                        related_name="claim_tokens",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("kind", fields.CharField(default="", max_length=32)),
                ("max_uses", fields.IntField()),
                ("uses", fields.IntField(default=0)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("created_by", fields.CharField(default="", max_length=64)),
                ("expires_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("revoked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("note", fields.CharField(default="", max_length=255)),
            ],
            options={
                "table": "claim_token",
                "app": "models",
                "indexes": [Index(fields=["site_id"]), Index(fields=["device_id"])],
                "pk_attr": "id",
                "table_description": (
                    "A code that enrolls terminals: for a site or a batch,"
                    " or one pre-registered terminal."
                ),
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="Device",
            name="broker_generation",
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name="Device",
            name="enrolled_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="Device",
            name="reenroll_until",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="Device",
            name="self_test",
            field=fields.JSONField(
                default=dict,
                db_default={},
                encoder=functools.partial(dumps, separators=(",", ":")),
                decoder=loads,
            ),
        ),
    ]
