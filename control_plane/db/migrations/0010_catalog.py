"""Service-item catalogs: one row per catalog edition (its package) and one per item.

Two new tables; nothing existing changes.
"""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0009_twin")]  # noqa: RUF012 - tortoise reads it so

    initial = False

    operations = [  # noqa: RUF012 - tortoise's Migration declares its operations so
        ops.CreateModel(
            name="CatalogEdition",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "package",
                    fields.OneToOneField(
                        "models.ContentPackage",
                        source_field="package_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="catalog_edition",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(max_length=64)),
                ("version", fields.BigIntField()),
                ("item_count", fields.IntField()),
                (
                    "published_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "catalog_edition",
                "app": "models",
                "unique_together": (("name", "version"),),
                "pk_attr": "id",
                "table_description": (
                    "One version of a catalog: the package of kind catalog that holds it, and its"
                    " item count."
                ),
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="CatalogItem",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                (
                    "edition",
                    fields.ForeignKeyField(
                        "models.CatalogEdition",
                        source_field="edition_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="items",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("code", fields.CharField(max_length=64)),
                ("department", fields.CharField(max_length=64)),
                ("channels", fields.CharField(max_length=128)),
                (
                    "item",
                    fields.JSONField(
                        encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
            ],
            options={
                "table": "catalog_item",
                "app": "models",
                "unique_together": (("edition", "code"),),
                "indexes": [Index(fields=["edition_id", "department"])],
                "pk_attr": "id",
                "table_description": (
                    "One item of a catalog edition: item is the ServiceItem as the catalog"
                    " file has it."
                ),
            },
            bases=["Model"],
        ),
    ]
