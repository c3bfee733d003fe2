"""Rollouts, each targeted device's step, and every device's latest package report.

Re-exported by ``models.py``, where tortoise finds every model. Migration ``0011_rollouts``
creates the tables. ``control_plane.rollouts`` holds the pure logic; ``control_plane.rollout_store``
reads and writes these rows.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Rollout(Model):
    """One package version sent to a set of devices in waves (a rollouts.RolloutSpec).

    The spec's fields are kept as written (thresholds as exact fractions in text, "1/10"), the
    targeting as asked (``target``: node, kinds, labels) next to the devices it resolved to
    (``RolloutDevice``), so ``show`` can say both what was asked and what it reached.
    """

    id = fields.CharField(max_length=64, primary_key=True)
    package_kind = fields.CharField(max_length=16)
    package_name = fields.CharField(max_length=64)
    target_version = fields.BigIntField()
    target_sha256 = fields.CharField(max_length=64)
    previous_version = fields.BigIntField(null=True)
    previous_sha256 = fields.CharField(max_length=64, null=True)
    peripheral = fields.CharField(max_length=64, default="")
    target: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    waves: fields.Field[list[str]] = fields.JSONField(default=list)
    success_threshold = fields.CharField(max_length=32)
    failure_threshold = fields.CharField(max_length=32)
    min_finished = fields.IntField()
    device_timeout_s = fields.IntField()
    install_policy = fields.CharField(max_length=32)
    allow_older = fields.BooleanField(default=False)
    phase = fields.CharField(max_length=16)
    wave = fields.IntField(default=0)
    pause_reason = fields.CharField(max_length=32, null=True)
    pause_detail = fields.CharField(max_length=255, default="")
    waived_wave = fields.IntField(null=True)
    created_at = fields.DatetimeField()
    created_by = fields.CharField(max_length=128)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "rollout"
        indexes = (("package_name",), ("phase",))


class RolloutDevice(Model):
    """Where one targeted device stands in one rollout (a rollouts.DeviceProgress)."""

    id = fields.BigIntField(primary_key=True)
    rollout_id = fields.CharField(max_length=64)
    device_id = fields.CharField(max_length=64)
    wave = fields.IntField()
    step = fields.CharField(max_length=32)
    step_since = fields.DatetimeField()
    installed_version = fields.BigIntField(null=True)
    attempts = fields.IntField(default=0)
    reason = fields.CharField(max_length=64, default="")
    detail = fields.CharField(max_length=255, default="")

    class Meta:
        table = "rollout_device"
        unique_together = (("rollout_id", "device_id"),)
        indexes = (("device_id",),)


class DevicePackage(Model):
    """A device's latest report on one package (an edge.protocol.PackageState)."""

    id = fields.BigIntField(primary_key=True)
    device_id = fields.CharField(max_length=64)
    name = fields.CharField(max_length=64)
    installed = fields.BigIntField(null=True)
    previous = fields.BigIntField(null=True)
    target = fields.BigIntField(null=True)
    rollout_id = fields.CharField(max_length=64, default="")
    phase = fields.CharField(max_length=16)
    bytes_done = fields.BigIntField(default=0)
    bytes_total = fields.BigIntField(default=0)
    reason = fields.CharField(max_length=64, default="")
    detail = fields.CharField(max_length=255, default="")
    reported_at = fields.DatetimeField()

    class Meta:
        table = "device_package"
        unique_together = (("device_id", "name"),)
        indexes = (("name",),)
