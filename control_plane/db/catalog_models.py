"""Service-item catalogs (事项清单) indexed from the catalog packages the repository keeps.

Re-exported by ``models.py``, where tortoise finds every model. Migration ``0010_catalog``
creates the tables. The package file stays the catalog's source of truth (it is what terminals
install); these rows repeat its items so that the API lists and filters them without opening
the file (``control_plane.catalog_store``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from .content_models import ContentPackage


class CatalogEdition(Model):
    """One version of a catalog: the package of kind catalog that holds it, and its item count.

    ``name`` and ``version`` are the package's, which the catalog file's own id and version
    must equal (checked at upload): one version of a catalog is one package file for good.
    """

    id = fields.IntField(primary_key=True)
    package: fields.OneToOneRelation[ContentPackage] = fields.OneToOneField(
        "models.ContentPackage", related_name="catalog_edition", on_delete=fields.CASCADE
    )
    package_id: int
    name = fields.CharField(max_length=64)
    version = fields.BigIntField()
    item_count = fields.IntField()
    published_at = fields.DatetimeField(null=True)

    class Meta:
        table = "catalog_edition"
        unique_together = (("name", "version"),)


class CatalogItem(Model):
    """One item of a catalog edition: item is the ServiceItem as the catalog file has it.

    ``department`` and ``channels`` are repeated as columns for the API's filters; ``channels``
    is the channel values between commas (``,kiosk,window,``), so that one channel is a
    ``LIKE '%,kiosk,%'`` on SQLite and PostgreSQL alike. Rows are written in code order, so
    their ids page through an edition in code order.
    """

    id = fields.BigIntField(primary_key=True)
    edition: fields.ForeignKeyRelation[CatalogEdition] = fields.ForeignKeyField(
        "models.CatalogEdition", related_name="items", on_delete=fields.CASCADE
    )
    edition_id: int
    code = fields.CharField(max_length=64)
    department = fields.CharField(max_length=64)
    channels = fields.CharField(max_length=128)
    item: fields.Field[dict[str, Any]] = fields.JSONField()

    class Meta:
        table = "catalog_item"
        unique_together = (("edition", "code"),)
        # In Meta, by column name, as docs/development.md asks of every index.
        indexes = (("edition_id", "department"),)
