"""The content repository: one row per package file kept, unique by sha256 and by version.

One new table; nothing existing changes.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0007_provisioning")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="ContentPackage",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("sha256", fields.CharField(unique=True, max_length=64)),
                ("size", fields.BigIntField()),
                ("kind", fields.CharField(max_length=16)),
                ("name", fields.CharField(max_length=64)),
                ("version", fields.BigIntField()),
                ("key_id", fields.CharField(max_length=16)),
                ("signature", fields.CharField(max_length=128)),
                (
                    "manifest",
                    fields.JSONField(
                        encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("uploaded_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("uploaded_by", fields.CharField(max_length=128)),
            ],
            options={
                "table": "content_package",
                "app": "models",
                "unique_together": (("kind", "name", "version"),),
                "indexes": [Index(fields=["name"])],
                "pk_attr": "id",
                "table_description": (
                    "A package accepted by the content repository: verified, stored by its sha256."
                ),
            },
            bases=["Model"],
        ),
    ]
