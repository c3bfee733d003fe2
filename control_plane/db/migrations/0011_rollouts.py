"""Rollouts: one row per rollout, one per targeted device, and each device's package reports.

Three new tables; nothing existing changes.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0010_catalog")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="DevicePackage",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("device_id", fields.CharField(max_length=64)),
                ("name", fields.CharField(max_length=64)),
                ("installed", fields.BigIntField(null=True)),
                ("previous", fields.BigIntField(null=True)),
                ("target", fields.BigIntField(null=True)),
                ("rollout_id", fields.CharField(default="", max_length=64)),
                ("phase", fields.CharField(max_length=16)),
                ("bytes_done", fields.BigIntField(default=0)),
                ("bytes_total", fields.BigIntField(default=0)),
                ("reason", fields.CharField(default="", max_length=64)),
                ("detail", fields.CharField(default="", max_length=255)),
                ("reported_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "device_package",
                "app": "models",
                "unique_together": (("device_id", "name"),),
                "indexes": [Index(fields=["name"])],
                "pk_attr": "id",
                "table_description": (
                    "A device's latest report on one package (an edge.protocol.PackageState)."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Rollout",
            fields=[
                (
                    "id",
                    fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64),
                ),
                ("package_kind", fields.CharField(max_length=16)),
                ("package_name", fields.CharField(max_length=64)),
                ("target_version", fields.BigIntField()),
                ("target_sha256", fields.CharField(max_length=64)),
                ("previous_version", fields.BigIntField(null=True)),
                ("previous_sha256", fields.CharField(null=True, max_length=64)),
                ("peripheral", fields.CharField(default="", max_length=64)),
                (
                    "target",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "waves",
                    fields.JSONField(
                        default=list,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("success_threshold", fields.CharField(max_length=32)),
                ("failure_threshold", fields.CharField(max_length=32)),
                ("min_finished", fields.IntField()),
                ("device_timeout_s", fields.IntField()),
                ("install_policy", fields.CharField(max_length=32)),
                ("allow_older", fields.BooleanField(default=False)),
                ("phase", fields.CharField(max_length=16)),
                ("wave", fields.IntField(default=0)),
                ("pause_reason", fields.CharField(null=True, max_length=32)),
                ("pause_detail", fields.CharField(default="", max_length=255)),
                ("waived_wave", fields.IntField(null=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("created_by", fields.CharField(max_length=128)),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "rollout",
                "app": "models",
                "indexes": [Index(fields=["package_name"]), Index(fields=["phase"])],
                "pk_attr": "id",
                "table_description": (
                    "One package version sent to a set of devices in waves"
                    " (a rollouts.RolloutSpec)."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="RolloutDevice",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("rollout_id", fields.CharField(max_length=64)),
                ("device_id", fields.CharField(max_length=64)),
                ("wave", fields.IntField()),
                ("step", fields.CharField(max_length=32)),
                ("step_since", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("installed_version", fields.BigIntField(null=True)),
                ("attempts", fields.IntField(default=0)),
                ("reason", fields.CharField(default="", max_length=64)),
                ("detail", fields.CharField(default="", max_length=255)),
            ],
            options={
                "table": "rollout_device",
                "app": "models",
                "unique_together": (("rollout_id", "device_id"),),
                "indexes": [Index(fields=["device_id"])],
                "pk_attr": "id",
                "table_description": (
                    "Where one targeted device stands in one rollout (a rollouts.DeviceProgress)."
                ),
            },
            bases=["Model"],
        ),
    ]
