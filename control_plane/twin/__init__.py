"""The device twin's pure core: config layers, their merge per device, versions and counts.

Nothing here touches the database, MQTT or the clock: the store loads layers and devices, calls
``desired_for`` and ``issue``, publishes ``DesiredConfig`` and keeps the ``Issued`` state.
"""

from __future__ import annotations

from .layers import (
    MAX_PRIORITY,
    DeviceContext,
    DeviceScope,
    GlobalScope,
    LabelScope,
    Layer,
    LayerError,
    NodeScope,
    Scope,
    Tier,
    TwinError,
    TwinErrorReason,
    matches,
    precedence,
)
from .merge import (
    Desired,
    DeviceConfigState,
    Issued,
    LayerCounts,
    affected_devices,
    desired_for,
    issue,
    layer_counts,
    next_version,
)

__all__ = [
    "MAX_PRIORITY",
    "Desired",
    "DeviceConfigState",
    "DeviceContext",
    "DeviceScope",
    "GlobalScope",
    "Issued",
    "LabelScope",
    "Layer",
    "LayerCounts",
    "LayerError",
    "NodeScope",
    "Scope",
    "Tier",
    "TwinError",
    "TwinErrorReason",
    "affected_devices",
    "desired_for",
    "issue",
    "layer_counts",
    "matches",
    "next_version",
    "precedence",
]
