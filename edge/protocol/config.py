"""Device twin: the desired config the control plane wants and the config the agent reports."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import msgspec

from .common import OpenEnum, Payload, Timestamp

CONFIG_VERSION_MAX = 2**53
"""Config versions count changes: one a second would take 285 million years to reach this. A
bound keeps the next version (the highest known plus one) within a 64-bit column; a reported
version at that column's limit made the twin sync fail on every pass."""
ConfigVersion = Annotated[int, msgspec.Meta(ge=0, le=CONFIG_VERSION_MAX)]


class DesiredConfig(Payload, frozen=True, kw_only=True):
    """Retained on the device's downlink. Versions only go up; the agent ignores older ones."""

    version: ConfigVersion = 0
    values: dict[str, Any] = {}
    issued_at: Timestamp | None = None

    required: ClassVar[tuple[str, ...]] = ("version",)


class ApplyStatus(OpenEnum):
    APPLIED = "applied"
    FAILED = "failed"
    PENDING = "pending"
    UNKNOWN = "unknown"


class ReportedConfig(Payload, frozen=True, kw_only=True):
    """Retained on the device's uplink: what the agent runs with now."""

    version: ConfigVersion = 0
    status: ApplyStatus = ApplyStatus.UNKNOWN
    error: str = ""
    values: dict[str, Any] = {}
    at: Timestamp | None = None

    required: ClassVar[tuple[str, ...]] = ("status",)
