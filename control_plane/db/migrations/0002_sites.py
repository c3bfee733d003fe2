"""Where terminals live: the jurisdiction tree, departments, sites and their windows.

Devices get their placement (site, window), serial, labels and lifecycle; the columns added to
``device`` carry database defaults, so the rows already there keep working.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor


async def path_compares_bytewise(_apps: object, schema_editor: BaseSchemaEditor) -> None:
    """Make PostgreSQL compare jurisdiction paths byte by byte, as SQLite does.

    Subtree queries are a range of paths (control_plane/jurisdiction.py); under a linguistic
    collation (en_US.UTF-8) the '/' between codes may not sort where the range expects it.
    """
    if schema_editor.DIALECT == "postgres":
        await schema_editor.client.execute_script(
            'ALTER TABLE "jurisdiction" ALTER COLUMN "path" TYPE VARCHAR(255) COLLATE "C"'
        )


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="Department",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("code", fields.CharField(unique=True, max_length=64)),
                ("name", fields.CharField(max_length=128)),
            ],
            options={
                "table": "department",
                "app": "models",
                "pk_attr": "id",
                "table_description": (
                    "An approving department (审批部门) that service windows serve for."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="JurisdictionNode",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("code", fields.CharField(unique=True, max_length=12)),
                ("name", fields.CharField(max_length=128)),
                ("level", fields.CharField(max_length=16)),
                (
                    "parent",
                    fields.ForeignKeyField(
                        "models.JurisdictionNode",
                        source_field="parent_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="children",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("path", fields.CharField(unique=True, max_length=255)),
            ],
            options={
                "table": "jurisdiction",
                "app": "models",
                "indexes": [Index(fields=["parent_id"])],
                "pk_attr": "id",
                "table_description": (
                    "One node of the jurisdiction tree (省 → 市 → 区/县 → 镇/街 → 村/居)"
                    " by its 行政区划 code."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Site",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("code", fields.CharField(unique=True, max_length=64)),
                ("name", fields.CharField(max_length=255)),
                ("level", fields.CharField(max_length=16)),
                (
                    "node",
                    fields.ForeignKeyField(
                        "models.JurisdictionNode",
                        source_field="node_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="sites",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("address", fields.CharField(default="", max_length=255)),
                ("hours", fields.CharField(max_length=255)),
                (
                    "holidays",
                    fields.JSONField(
                        default=dict,
                        encoder=functools.partial(dumps, separators=(",", ":")),
                        decoder=loads,
                    ),
                ),
            ],
            options={
                "table": "site",
                "app": "models",
                "indexes": [Index(fields=["node_id"])],
                "pk_attr": "id",
                "table_description": (
                    "A hall (政务服务中心) or village service station, hung off a node of the tree."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ServiceWindow",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "site",
                    fields.ForeignKeyField(
                        "models.Site",
                        source_field="site_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="windows",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("number", fields.CharField(max_length=16)),
                ("name", fields.CharField(default="", max_length=128)),
            ],
            options={
                "table": "service_window",
                "app": "models",
                "unique_together": (("site", "number"),),
                "pk_attr": "id",
                "table_description": (
                    'A service window (窗口) of a site, by its number there (``"01"``, ``"A12"``).'
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="WindowDepartment",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "window",
                    fields.ForeignKeyField(
                        "models.ServiceWindow",
                        source_field="window_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="departments",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "department",
                    fields.ForeignKeyField(
                        "models.Department",
                        source_field="department_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="windows",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
            ],
            options={
                "table": "window_department",
                "app": "models",
                "unique_together": (("window", "department"),),
                "pk_attr": "id",
                "table_description": (
                    "A department a window serves (a window may serve several: 综合窗口)."
                ),
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="Device",
            name="labels",
            field=fields.JSONField(
                default=dict,
                db_default={},
                encoder=functools.partial(dumps, separators=(",", ":")),
                decoder=loads,
            ),
        ),
        ops.AddField(
            model_name="Device",
            name="lifecycle",
            field=fields.CharField(default="registered", db_default="registered", max_length=16),
        ),
        ops.AddField(
            model_name="Device",
            name="serial",
            field=fields.CharField(default="", db_default="", max_length=64),
        ),
        ops.AddField(
            model_name="Device",
            name="site",
            field=fields.ForeignKeyField(
                "models.Site",
                source_field="site_id",
                null=True,
                db_constraint=True,
                to_field="id",
                related_name="devices",
                on_delete=OnDelete.SET_NULL,
            ),
        ),
        ops.AddField(
            model_name="Device",
            name="window",
            field=fields.ForeignKeyField(
                "models.ServiceWindow",
                source_field="window_id",
                null=True,
                db_constraint=True,
                to_field="id",
                related_name="devices",
                on_delete=OnDelete.SET_NULL,
            ),
        ),
        ops.AddIndex(
            model_name="Device",
            index=Index(fields=["site_id"]),
        ),
        ops.AddIndex(
            model_name="Device",
            index=Index(fields=["window_id"]),
        ),
        ops.AddIndex(
            model_name="Device",
            index=Index(fields=["serial"]),
        ),
        ops.RunPython(path_compares_bytewise, ops.RunPython.noop),
    ]
