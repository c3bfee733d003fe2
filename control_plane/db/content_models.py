"""The content repository's packages: one row per signed package file the control plane keeps.

Re-exported by ``models.py``, where tortoise finds every model. Migration ``0008_content``
creates the table. The file itself lies in the content directory as ``<sha256>.tfpkg``
(``control_plane.content_repo``); the row holds what was verified in it.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class ContentPackage(Model):
    """A package accepted by the content repository: verified, stored by its sha256.

    ``(kind, name, version)`` is unique: a version, once uploaded, means one file for good, so a
    terminal that has it installed never needs it again. ``signature`` is manifest.sig's Ed25519
    signature (base64), which the terminal checks with the key ``key_id`` names.
    """

    id = fields.IntField(primary_key=True)
    sha256 = fields.CharField(max_length=64, unique=True)
    size = fields.BigIntField()
    kind = fields.CharField(max_length=16)
    name = fields.CharField(max_length=64)
    version = fields.BigIntField()
    key_id = fields.CharField(max_length=16)
    signature = fields.CharField(max_length=128)
    manifest: fields.Field[dict[str, Any]] = fields.JSONField()
    uploaded_at = fields.DatetimeField()
    uploaded_by = fields.CharField(max_length=128)

    class Meta:
        table = "content_package"
        unique_together = (("kind", "name", "version"),)
        # In Meta, by column name, as docs/development.md asks of every index.
        indexes = (("name",),)
