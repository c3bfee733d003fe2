"""Presence: the retained online/offline message and the last will."""

from __future__ import annotations

from typing import ClassVar

from .common import OpenEnum, Payload, Seq, Timestamp


class PresenceState(OpenEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class OfflineReason(OpenEnum):
    NONE = ""
    SHUTDOWN = "shutdown"
    """The agent said goodbye before stopping (planned)."""
    WILL = "will"
    """The broker published the last will: the connection was lost."""
    UNKNOWN = "unknown"


class DeviceKind(OpenEnum):
    KIOSK = "kiosk"
    """政务服务一体机 self-service kiosk."""
    REVIEW_PAD = "review_pad"
    """评价器 review pad at a service window."""
    STATION_PC = "station_pc"
    """村居公共服务站 village service station PC."""
    BOOTH = "booth"
    """政务晓屋 guidance booth with remote video help."""
    UNKNOWN = "unknown"


class Presence(Payload, frozen=True, kw_only=True):
    """Retained on the device's presence topic; the same shape is registered as the last will.

    ``session`` counts the agent's connections and never goes back. A reader keeps the message
    with the highest (session, state) where offline ranks above online within one session, so a
    late last will of an earlier connection cannot overwrite a newer online.
    """

    state: PresenceState = PresenceState.UNKNOWN
    session: Seq = 0
    at: Timestamp | None = None
    reason: OfflineReason = OfflineReason.NONE
    kind: DeviceKind = DeviceKind.UNKNOWN
    agent_version: str = ""

    required: ClassVar[tuple[str, ...]] = ("state", "session")
