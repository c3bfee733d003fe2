"""Device events: things that happened on the terminal worth keeping in its history."""

from __future__ import annotations

from typing import ClassVar

from .common import OpenEnum, Record
from .health import PeripheralKind, PeripheralState


class EventType(OpenEnum):
    AGENT_STARTED = "agent_started"
    PERIPHERAL_CHANGED = "peripheral_changed"
    OUTBOX_NEAR_FULL = "outbox_near_full"
    CONFIG_APPLIED = "config_applied"
    CONTENT_INSTALLED = "content_installed"
    TAMPER = "tamper"
    UNKNOWN = "unknown"


class Severity(OpenEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


class DeviceEvent(Record, frozen=True, kw_only=True):
    """A device event record; ``details`` carries type-specific string values."""

    type: EventType = EventType.UNKNOWN
    severity: Severity = Severity.INFO
    message: str = ""
    peripheral: str = ""
    peripheral_kind: PeripheralKind | None = None
    peripheral_state: PeripheralState | None = None
    details: dict[str, str] = {}

    required: ClassVar[tuple[str, ...]] = ("seq", "type")
