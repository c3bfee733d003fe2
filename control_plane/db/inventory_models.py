"""Tables of what a terminal is made of, and its labels, kept in rows so that filters are indexed.

``device.last_health`` keeps the whole last heartbeat as JSON; these tables hold the parts that
the device list filters on or an operator looks up (which peripheral is faulty since when, which
agent runs where), written only when they change (``control_plane.registry.save_states``).
``device.labels`` stays the device's labels as the API shows them; ``device_label`` repeats
them one per row, so that ``?label=key=value`` is an index lookup, not a scan of JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from .models import Device


class AgentInventory(Model):
    """What runs on a terminal: its agent's version, operating system and hardware model."""

    # Its own id: tortoise's migrations misread a one-to-one field that is the primary key.
    id = fields.IntField(primary_key=True)
    device: fields.OneToOneRelation[Device] = fields.OneToOneField(
        "models.Device", related_name="agent_inventory", on_delete=fields.CASCADE
    )
    device_id: str
    agent_version = fields.CharField(max_length=64, default="")
    os = fields.CharField(max_length=128, default="")
    hardware_model = fields.CharField(max_length=64, default="")
    changed_at = fields.DatetimeField()
    """When any of the above last changed (the receive time of the message that changed it)."""

    class Meta:
        table = "device_agent"


class PeripheralInventory(Model):
    """One peripheral of a terminal (printer0, pad0) as the device's last health reported it."""

    id = fields.BigIntField(primary_key=True)
    device: fields.ForeignKeyRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="peripherals", on_delete=fields.CASCADE
    )
    device_id: str
    name = fields.CharField(max_length=64)
    kind = fields.CharField(max_length=32)
    model = fields.CharField(max_length=64, default="")
    firmware = fields.CharField(max_length=64, default="")
    status = fields.CharField(max_length=16)
    reason = fields.CharField(max_length=64, default="")
    status_since = fields.DatetimeField()
    """When the peripheral's status took its present value (ok → fault, fault → ok, ...)."""
    changed_at = fields.DatetimeField()
    """When anything of this row last changed: status, reason, model or firmware."""

    class Meta:
        table = "device_peripheral"
        unique_together = (("device", "name"),)
        # ?fault=KIND reads (kind, status) and hands device ids on: an index-only lookup.
        indexes = (("kind", "status", "device_id"),)


class DeviceLabel(Model):
    """One label of a device, repeated from ``device.labels`` for indexed label filters."""

    id = fields.BigIntField(primary_key=True)
    device: fields.ForeignKeyRelation[Device] = fields.ForeignKeyField(
        "models.Device", related_name="label_rows", on_delete=fields.CASCADE
    )
    device_id: str
    key = fields.CharField(max_length=63)
    value = fields.CharField(max_length=63)

    class Meta:
        table = "device_label"
        unique_together = (("device", "key"),)
        indexes = (("key", "value", "device_id"),)
