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


Count = Annotated[int, msgspec.Meta(ge=0)]
MAX_LIMITED_CODES = 50
"""Item codes an ``ItemsSummary`` lists: a screenful for an operator; its counts cover all."""
MAX_MISSING_KINDS = 32
"""More than there are peripheral kinds: one entry per kind at most."""


class MissingPeripheral(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The items one kind of peripheral holds back because no peripheral of it works now.

    An item that needs two such kinds is counted under each.
    """

    kind: PeripheralKind = PeripheralKind.UNKNOWN
    query_only: Count = 0
    """Items that can be looked up but not completed without it ("can query, cannot print")."""
    unavailable: Count = 0
    """Items that cannot even be looked up without it."""


class ItemsSummary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the terminal can serve now of the service-item catalog (事项清单) it has installed.

    Counts by level, the peripheral kinds that hold items back, and the codes of the items it
    cannot complete, worst first, at most ``MAX_LIMITED_CODES`` of them (``codes_left_out``
    says how many more). Items not offered on the terminal's channel are counted apart.
    """

    catalog_id: str = ""
    version: Count = 0
    full: Count = 0
    query_only: Count = 0
    unavailable: Count = 0
    not_effective: Count = 0
    """Items outside their effective dates today."""
    not_offered: Count = 0
    """Items not offered on this kind of terminal's channel (a window-only item on a kiosk)."""
    missing: Annotated[
        tuple[MissingPeripheral, ...], msgspec.Meta(max_length=MAX_MISSING_KINDS)
    ] = ()
    unavailable_codes: Annotated[tuple[str, ...], msgspec.Meta(max_length=MAX_LIMITED_CODES)] = ()
    query_only_codes: Annotated[tuple[str, ...], msgspec.Meta(max_length=MAX_LIMITED_CODES)] = ()
    codes_left_out: Count = 0
    """Codes of query-only or unavailable items not listed, for the bound."""


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
    items: ItemsSummary | None = None
    """What it can serve now of its service-item catalog; absent without a catalog installed."""

    required: ClassVar[tuple[str, ...]] = ("seq",)
