"""Staff (工作人员) of departments, for binding review pads and reviews.

One new table; nothing existing changes. It has no column for a national ID number.
"""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0004_device_inventory")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="Staff",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("number", fields.CharField(unique=True, max_length=32)),
                ("name", fields.CharField(max_length=64)),
                (
                    "department",
                    fields.ForeignKeyField(
                        "models.Department",
                        source_field="department_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="staff",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                (
                    "site",
                    fields.ForeignKeyField(
                        "models.Site",
                        source_field="site_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="staff",
                        on_delete=OnDelete.RESTRICT,
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
                        related_name="staff",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("active", fields.BooleanField(default=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("updated_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "staff",
                "app": "models",
                "indexes": [
                    Index(fields=["site_id"]),
                    Index(fields=["department_id"]),
                    Index(fields=["window_id"]),
                ],
                "pk_attr": "id",
                "table_description": (
                    "A member of staff of a department, working at a site, maybe at one of its"
                    " windows."
                ),
            },
            bases=["Model"],
        ),
    ]
