"""Tables. The walking skeleton keeps one: the devices seen on the broker."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Device(Model):
    """One terminal and its last known presence and health."""

    device_id = fields.CharField(max_length=64, primary_key=True)
    kind = fields.CharField(max_length=32, default="unknown")
    presence = fields.CharField(max_length=16, default="unknown")
    presence_session = fields.BigIntField(default=0)
    agent_version = fields.CharField(max_length=64, default="")
    first_seen = fields.DatetimeField(auto_now_add=True)
    last_seen = fields.DatetimeField(null=True)
    last_health: fields.Field[dict[str, object] | None] = fields.JSONField(null=True)

    class Meta:
        table = "device"
