"""API tokens (stored as hashes, scoped to a node of the jurisdiction tree) and the audit log.

Two new tables; nothing existing changes.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor


async def scope_path_compares_bytewise(_apps: object, schema_editor: BaseSchemaEditor) -> None:
    """Make PostgreSQL compare audit scope paths byte by byte, as jurisdiction paths (0002).

    A scoped auditor reads the entries of its subtree as one range of paths.
    """
    if schema_editor.DIALECT == "postgres":
        await schema_editor.client.execute_script(
            'ALTER TABLE "audit_log" ALTER COLUMN "scope_path" TYPE VARCHAR(255) COLLATE "C"'
        )


class Migration(migrations.Migration):
    dependencies = [("models", "0002_sites")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="ApiToken",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("name", fields.CharField(max_length=64)),
                ("role", fields.CharField(max_length=16)),
                (
                    "scope",
                    fields.ForeignKeyField(
                        "models.JurisdictionNode",
                        source_field="scope_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="tokens",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("secret_hash", fields.CharField(unique=True, max_length=64)),
                ("prefix", fields.CharField(max_length=16)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("expires_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "last_used_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("revoked_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "api_token",
                "app": "models",
                "indexes": [
                    Index(fields=["scope_id"]),
                    Index(fields=["name"]),
                    Index(fields=["prefix"]),
                ],
                "pk_attr": "id",
                "table_description": (
                    "A bearer token of the REST API: a role, scoped to a subtree of the"
                    " jurisdiction tree."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="AuditEntry",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("actor_token_id", fields.IntField(null=True)),
                ("actor_name", fields.CharField(max_length=128)),
                ("action", fields.CharField(max_length=64)),
                ("target_type", fields.CharField(max_length=32)),
                ("target_id", fields.CharField(max_length=128)),
                ("scope_path", fields.CharField(null=True, max_length=255)),
                (
                    "before",
                    fields.JSONField(
                        null=True,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                (
                    "after",
                    fields.JSONField(
                        null=True,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
                ("note", fields.TextField(default="", unique=False)),
            ],
            options={
                "table": "audit_log",
                "app": "models",
                "indexes": [
                    Index(fields=["target_type", "target_id"]),
                    Index(fields=["scope_path"]),
                ],
                "pk_attr": "id",
                "table_description": (
                    "One change to termfleet's data: who, what, when, the target before and after."
                ),
            },
            bases=["Model"],
        ),
        ops.RunPython(scope_path_compares_bytewise, ops.RunPython.noop),
    ]
