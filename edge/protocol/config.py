"""Device twin: the desired config the control plane wants and the config the agent reports."""

from __future__ import annotations

from typing import Any, ClassVar

from .common import OpenEnum, Payload, Timestamp


class DesiredConfig(Payload, frozen=True, kw_only=True):
    """Retained on the device's downlink. Versions only go up; the agent ignores older ones."""

    version: int = 0
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

    version: int = 0
    status: ApplyStatus = ApplyStatus.UNKNOWN
    error: str = ""
    values: dict[str, Any] = {}
    at: Timestamp | None = None

    required: ClassVar[tuple[str, ...]] = ("status",)
