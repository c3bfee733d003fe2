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


class StoredRecord(Model):
    """One usage, review or event record, stored exactly once per (device_id, seq).

    ``payload`` keeps the record as the device sent it (JSON text): typed tables for reviews and
    usage statistics are built from it by the issues that need them, and nothing is lost meanwhile.
    """

    id = fields.BigIntField(primary_key=True)
    device_id = fields.CharField(max_length=64)
    seq = fields.BigIntField()
    channel = fields.CharField(max_length=16)
    type = fields.CharField(max_length=32)
    device_time = fields.DatetimeField(null=True)
    received_at = fields.DatetimeField()
    payload = fields.TextField()

    class Meta:
        table = "record"
        unique_together = (("device_id", "seq"),)


class RejectedMessage(Model):
    """Uplink bytes that could not be stored as sent, kept for an operator (dead letters)."""

    id = fields.BigIntField(primary_key=True)
    topic = fields.CharField(max_length=255)
    device_id = fields.CharField(max_length=64, null=True)
    seq = fields.BigIntField(null=True)
    reason = fields.CharField(max_length=32)
    detail = fields.TextField()
    payload = fields.TextField()
    received_at = fields.DatetimeField()

    class Meta:
        table = "rejected_message"
