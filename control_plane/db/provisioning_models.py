"""Claim tokens: how a terminal proves it may join the fleet (provisioning).

Re-exported by ``models.py``, where tortoise finds every model. Migration ``0007_provisioning``
creates the table. A code is stored only as its hash; it is shown once, when it is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:  # models.py imports this module at its end: no import cycle at run time
    from .models import Device, ServiceWindow, Site


class ClaimToken(Model):
    """A code that enrolls terminals: for a site or a batch, or one pre-registered terminal.

    A site or batch token enrolls up to ``max_uses`` terminals until it expires; a
    pre-registration code is bound to one device row (its serial, kind and placement) and
    enrolls it once.
    """

    id = fields.IntField(primary_key=True)
    code_hash = fields.CharField(max_length=64, unique=True)
    prefix = fields.CharField(max_length=8)
    batch = fields.CharField(max_length=64, default="")
    site: fields.ForeignKeyNullableRelation[Site] = fields.ForeignKeyField(
        "models.Site", null=True, related_name="claim_tokens", on_delete=fields.CASCADE
    )
    site_id: int | None
    window: fields.ForeignKeyNullableRelation[ServiceWindow] = fields.ForeignKeyField(
        "models.ServiceWindow", null=True, related_name="claim_tokens", on_delete=fields.SET_NULL
    )
    window_id: int | None
    device: fields.ForeignKeyNullableRelation[Device] = fields.ForeignKeyField(
        "models.Device", null=True, related_name="claim_tokens", on_delete=fields.CASCADE
    )
    device_id: str | None
    kind = fields.CharField(max_length=32, default="")
    max_uses = fields.IntField()
    uses = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=64, default="")
    expires_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    note = fields.CharField(max_length=255, default="")

    class Meta:
        table = "claim_token"
        # In Meta, by column name, as docs/development.md asks of every index.
        indexes = (("site_id",), ("device_id",))
