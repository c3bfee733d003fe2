"""The device twin's tables: config layers, the revision counter, and each device's twin.

Re-exported by ``models.py``, where tortoise finds every model. Migration ``0009_twin`` creates
the tables. ``control_plane.twin`` holds the pure logic; ``control_plane.twin_store`` reads and
writes these rows.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class ConfigLayer(Model):
    """A set of config values for every device in a scope, as control_plane.twin.layers has it.

    ``scope_kind`` is global, node, labels or device; ``scope`` holds what the kind needs: the
    node's code (its path is read from the tree whenever layers are merged, so a layer follows
    its node), the label selector, or the device id. ``revision`` is the revision counter's
    value when the layer was last written.
    """

    id = fields.CharField(max_length=64, primary_key=True)
    scope_kind = fields.CharField(max_length=8)
    scope: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    priority = fields.IntField(default=0)
    values: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    description = fields.CharField(max_length=255, default="")
    revision = fields.BigIntField()
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    updated_by = fields.CharField(max_length=128)

    class Meta:
        table = "config_layer"


class ConfigRevision(Model):
    """One row: the counter every layer change raises, which desired versions are taken from."""

    id = fields.IntField(primary_key=True)
    revision = fields.BigIntField(default=0)

    class Meta:
        table = "config_revision"


class DeviceTwin(Model):
    """The twin of one device: the desired config last issued to it and the config it reported.

    ``desired_version`` 0 means nothing was issued yet. ``published_version`` is the version last
    handed to the broker; ``reported_*`` is the device's last ``ReportedConfig`` (``reported_at``
    the device's time, ``received_at`` ours). A plain device id, not a foreign key: reports may
    arrive from a device the registry has not stored yet, as presence does.
    """

    device_id = fields.CharField(max_length=64, primary_key=True)
    desired_version = fields.BigIntField(default=0)
    desired_values: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    desired_sources: fields.Field[dict[str, str]] = fields.JSONField(default=dict)
    layer_since: fields.Field[dict[str, int]] = fields.JSONField(default=dict)
    issued_at = fields.DatetimeField(null=True)
    published_version = fields.BigIntField(default=0)
    reported_version = fields.BigIntField(default=0)
    reported_status = fields.CharField(max_length=16, default="")
    reported_error = fields.TextField(default="")
    reported_values: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    reported_at = fields.DatetimeField(null=True)
    received_at = fields.DatetimeField(null=True)

    class Meta:
        table = "device_twin"
