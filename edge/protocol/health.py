"""Heartbeat: the device's health and the status of each of its peripherals."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from .common import OpenEnum, Payload, Seq, Timestamp

Percent = Annotated[float, msgspec.Meta(ge=0, le=100)]


class NetworkType(OpenEnum):
    ETHERNET = "ethernet"
    WIFI = "wifi"
    CELLULAR_4G = "4g"
    CELLULAR_5G = "5g"
    UNKNOWN = "unknown"


class PeripheralKind(OpenEnum):
    RECEIPT_PRINTER = "receipt_printer"
    A4_PRINTER = "a4_printer"
    ID_CARD_READER = "id_card_reader"
    """Second-generation resident ID card reader (二代证读卡器)."""
    REVIEW_PAD = "review_pad"
    """评价器 attached to a station PC or a window."""
    DOCUMENT_CAMERA = "document_camera"
    """高拍仪."""
    CITIZEN_CARD_READER = "citizen_card_reader"
    """民生卡 reader."""
    CAMERA = "camera"
    SCANNER = "scanner"
    CALL_BUTTON = "call_button"
    """呼叫帮办 call-for-help button."""
    SCREEN = "screen"
    UNKNOWN = "unknown"


class PeripheralState(OpenEnum):
    OK = "ok"
    DEGRADED = "degraded"
    """Works but needs attention soon (paper near end)."""
    FAULT = "fault"
    ABSENT = "absent"
    UNKNOWN = "unknown"


class PeripheralStatus(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One peripheral as the agent sees it; ``name`` is unique on the device (printer0, pad0)."""

    name: str = ""
    kind: PeripheralKind = PeripheralKind.UNKNOWN
    state: PeripheralState = PeripheralState.UNKNOWN
    reason: str = ""
    """Machine-readable cause for anything but ok, e.g. paper_out, cover_open, no_answer."""
    model: str = ""
    firmware: str = ""


class Network(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    type: NetworkType = NetworkType.UNKNOWN
    signal_dbm: int | None = None


class Heartbeat(Payload, frozen=True, kw_only=True):
    """Latest-wins health. ``full`` marks a complete snapshot; otherwise None means unchanged.

    The agent sends what changed at every heartbeat and a full snapshot at a slower interval, so
    a reader that missed a diff is whole again at the next snapshot.
    """

    session: Seq = 0
    """The presence session (connection) this heartbeat belongs to; see Presence."""
    seq: Seq = 0
    """Counts heartbeats within the session; (session, seq) orders heartbeats."""
    at: Timestamp | None = None
    full: bool = False
    uptime_s: Annotated[int, msgspec.Meta(ge=0)] | None = None
    cpu_percent: Percent | None = None
    memory_percent: Percent | None = None
    disk_percent: Percent | None = None
    temperature_c: float | None = None
    network: Network | None = None
    agent_version: str | None = None
    os: str | None = None
    """Operating system and its version, as the terminal names it (``Kylin V10 (SP1)``)."""
    hardware_model: str | None = None
    """The terminal's model as its maker names it (a PC's DMI product name)."""
    outbox_backlog: Annotated[int, msgspec.Meta(ge=0)] | None = None
    peripherals: tuple[PeripheralStatus, ...] | None = None

    required: ClassVar[tuple[str, ...]] = ("seq",)
