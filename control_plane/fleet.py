"""Live fleet state in memory: presence, health and last contact per device. Pure; no IO.

The ingest computes each update here, stores it, and only then puts it into the state; the
metrics collector reads the state at scrape time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

import msgspec

from edge.protocol import DeviceKind, Heartbeat, OfflineReason, Presence, PresenceState
from edge.schedule import OpeningHours

from .site_facts import SiteFacts
from .site_labels import UNPLACED, SiteLabels

DEFAULT_HEARTBEAT_TIMEOUT_S = 90.0
"""Silence after which an online device counts as offline: three default heartbeat intervals."""
SILENT = "silent"
"""The presence reason of a device that says it is online but has not been heard from."""
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class DeviceState:
    device_id: str
    kind: DeviceKind = DeviceKind.UNKNOWN
    presence: PresenceState = PresenceState.UNKNOWN
    session: int = 0
    agent_version: str = ""
    last_seen: datetime | None = None
    health: Heartbeat | None = None
    """The latest heartbeat merged over the last full snapshot: what we know of its health now."""
    offline_reason: OfflineReason = OfflineReason.NONE
    site: str = ""
    """The code of the site (hall or station) the device is placed at; empty if not placed."""


class Availability(StrEnum):
    """Presence as operations staff act on it: is an offline terminal a problem.

    A village station switched off at night is offline as expected; the same station offline
    on a Tuesday morning is not. A device whose site or opening hours are unknown counts as
    unexpected: better a needless look than a missed outage.
    """

    ONLINE = "online"
    OFFLINE_EXPECTED = "offline_expected"
    OFFLINE_UNEXPECTED = "offline_unexpected"
    UNKNOWN = "unknown"


PRESENCE_FILTERS = frozenset({p.value for p in PresenceState} | {a.value for a in Availability})
"""What a device list may be filtered by: a presence, or an availability."""


def presence_rank(session: int, state: PresenceState) -> tuple[int, int]:
    """Order of presence messages: by session, and within one session offline after online.

    A last will from an earlier connection can reach us after the online of a newer one (the
    broker publishes it when it notices the old socket is dead); its lower session loses.
    """
    return (session, 1 if state is PresenceState.OFFLINE else 0)


_NOT_HEALTH = frozenset({"v", "session", "seq", "at", "full"})
_HEALTH_FIELDS = tuple(name for name in Heartbeat.__struct_fields__ if name not in _NOT_HEALTH)
"""Looked up once: ``msgspec.structs.fields`` evaluates the annotations at every call (~70 µs),
a fifth of the control plane's CPU with a heartbeat from 12,000 terminals every 30 s."""


def merge_heartbeat(previous: Heartbeat | None, heartbeat: Heartbeat) -> Heartbeat:
    """A full snapshot replaces what we had; a diff overrides only the fields it carries."""
    if heartbeat.full or previous is None:
        return heartbeat
    changes: dict[str, Any] = {
        name: value for name in _HEALTH_FIELDS if (value := getattr(heartbeat, name)) is not None
    }
    return msgspec.structs.replace(
        previous, session=heartbeat.session, seq=heartbeat.seq, at=heartbeat.at, **changes
    )


@dataclass(frozen=True, slots=True)
class EffectivePresence:
    """Presence as operators should read it.

    What the device said, checked against its silence and, when offline, against its site's
    opening hours.
    """

    state: PresenceState
    reason: str
    """``will``, ``shutdown`` or ``silent`` when offline; empty otherwise."""
    availability: Availability = Availability.UNKNOWN


class FleetState:
    """Every device's live state, keyed by device id.

    With a ``heartbeat_timeout_s``, a device whose last presence says online but that has not
    been heard from for that long counts as offline (reason ``silent``): a will can be lost
    with the broker that should have sent it. Silence is measured from the later of its last
    contact and ``started_at``, so a restarted control plane gives every device one timeout to
    be heard from before calling it silent.
    """

    def __init__(
        self,
        devices: Iterable[DeviceState] = (),
        *,
        heartbeat_timeout_s: float | None = None,
        started_at: datetime | None = None,
    ) -> None:
        self._devices = {d.device_id: d for d in devices}
        self._timeout = timedelta(seconds=heartbeat_timeout_s) if heartbeat_timeout_s else None
        self._started_at = started_at
        self._hours: Mapping[str, OpeningHours] = {}
        self._site_paths: Mapping[str, str] = {}
        self._facts = SiteFacts()

    def set_opening_hours(self, hours: Mapping[str, OpeningHours]) -> None:
        """Every site's opening hours by site code, replacing what was known."""
        self._hours = dict(hours)

    def set_site_paths(self, paths: Mapping[str, str]) -> None:
        """Every site's jurisdiction path by site code, replacing what was known."""
        self._site_paths = dict(paths)

    def set_site(self, code: str, hours: OpeningHours | None, path: str | None) -> None:
        """One site's opening hours and path, after a change to it; None forgets it.

        Copies rather than changes the mappings in place: a reader iterating the old one (the
        metrics collector, a listing) never sees it change under it.
        """
        self._hours = _with(self._hours, code, hours)
        self._site_paths = _with(self._site_paths, code, path)

    @property
    def site_facts(self) -> SiteFacts:
        """Sites' labels and windows, districts of the tree: what the fleet gauges group by."""
        return self._facts

    def set_site_facts(self, facts: SiteFacts) -> None:
        """Replace the site facts whole (``SiteFacts.with_site`` makes one for a site change)."""
        self._facts = facts

    def snapshot(self) -> FleetState:
        """A copy to read away from the event loop (a scrape in a thread) while this one changes.

        Copies the device table only: the devices' states are frozen, and the sites' hours,
        paths and facts are replaced whole on a change, never changed in place.
        """
        copy = FleetState(heartbeat_timeout_s=None, started_at=self._started_at)
        copy._devices = dict(self._devices)
        copy._timeout = self._timeout
        copy._hours = self._hours
        copy._site_paths = self._site_paths
        copy._facts = self._facts
        return copy

    def site_labels(self, state: DeviceState) -> SiteLabels:
        """The city, district and hall level of the device's site, as metric labels.

        ``UNPLACED`` (``none`` for all three) when it is placed nowhere or at a site not known.
        """
        return self._facts.labels.get(state.site, UNPLACED) if state.site else UNPLACED

    def site_path(self, state: DeviceState) -> str | None:
        """The jurisdiction path of the device's site: where it lies for API scopes.

        None when it is placed nowhere, or at a site not (yet) known.
        """
        return self._site_paths.get(state.site) if state.site else None

    def site_hours(self, code: str) -> OpeningHours | None:
        """A site's opening hours by its code; None when the site or its hours are unknown."""
        return self._hours.get(code)

    def hours_of(self, device_id: str) -> OpeningHours | None:
        """The opening hours of the device's site; None when unplaced or the site has none."""
        state = self._devices.get(device_id)
        return self._hours.get(state.site) if state is not None and state.site else None

    def place(self, placements: Mapping[str, str]) -> None:
        """Set each listed device's site (device id → site code; "" for none)."""
        for device_id, site in placements.items():
            current = self._devices.get(device_id)
            if current is not None and current.site != site:
                self._devices[device_id] = replace(current, site=site)

    def __len__(self) -> int:
        return len(self._devices)

    def __iter__(self) -> Iterator[DeviceState]:
        return iter(self._devices.values())

    def get(self, device_id: str) -> DeviceState | None:
        return self._devices.get(device_id)

    def put(self, state: DeviceState) -> None:
        self._devices[state.device_id] = state

    def presence_update(
        self, device_id: str, presence: Presence, received_at: datetime | None
    ) -> DeviceState | None:
        """The state after this presence message, or None if it changes nothing.

        ``received_at`` is None for a retained message replayed by the broker at subscribe time:
        it says what the state is, not that the device was heard from just now.
        """
        if presence.state is PresenceState.UNKNOWN:
            return None
        current = self._devices.get(device_id) or DeviceState(device_id)
        incoming = presence_rank(presence.session, presence.state)
        if incoming <= presence_rank(current.session, current.presence):
            return None
        return replace(
            current,
            presence=presence.state,
            session=presence.session,
            kind=presence.kind if presence.kind is not DeviceKind.UNKNOWN else current.kind,
            agent_version=presence.agent_version or current.agent_version,
            last_seen=received_at or current.last_seen,
            offline_reason=presence.reason,
        )

    def heartbeat_update(
        self, device_id: str, heartbeat: Heartbeat, received_at: datetime
    ) -> DeviceState | None:
        """The state after this heartbeat, or None if it is older than one already applied.

        A heartbeat never flips presence: only presence messages (and expiry) do.
        """
        current = self._devices.get(device_id) or DeviceState(device_id)
        known = current.health
        if known is not None and (heartbeat.session, heartbeat.seq) <= (known.session, known.seq):
            return None
        return replace(
            current,
            agent_version=heartbeat.agent_version or current.agent_version,
            last_seen=received_at,
            health=merge_heartbeat(known, heartbeat),
        )

    def apply_presence(
        self, device_id: str, presence: Presence, received_at: datetime | None
    ) -> DeviceState | None:
        """``presence_update`` and ``put`` in one, for callers that store nothing."""
        updated = self.presence_update(device_id, presence, received_at)
        if updated is not None:
            self.put(updated)
        return updated

    def apply_heartbeat(
        self, device_id: str, heartbeat: Heartbeat, received_at: datetime
    ) -> DeviceState | None:
        """``heartbeat_update`` and ``put`` in one, for callers that store nothing."""
        updated = self.heartbeat_update(device_id, heartbeat, received_at)
        if updated is not None:
            self.put(updated)
        return updated

    def effective(
        self, state: DeviceState, now: datetime | None, closed: dict[str, bool] | None = None
    ) -> EffectivePresence:
        """The device's presence at ``now``.

        With ``now`` None: as last reported, without the silence check, and an offline device
        counts as unexpected (no moment to check the opening hours at). ``closed`` memoizes
        whether each site is closed at ``now``, for a caller that looks at every device.
        """
        if state.presence is PresenceState.OFFLINE:
            return self._offline(state, state.offline_reason.value, now, closed)
        if state.presence is PresenceState.ONLINE and now is not None and self._timeout:
            heard = max(
                (t for t in (state.last_seen, self._started_at) if t is not None), default=None
            )
            if heard is not None and now - heard > self._timeout:
                return self._offline(state, SILENT, now, closed)
        if state.presence is PresenceState.ONLINE:
            return EffectivePresence(PresenceState.ONLINE, "", Availability.ONLINE)
        return EffectivePresence(state.presence, "", Availability.UNKNOWN)

    def _offline(
        self, state: DeviceState, reason: str, now: datetime | None, memo: dict[str, bool] | None
    ) -> EffectivePresence:
        closed = memo.get(state.site) if memo is not None else None
        if closed is None:
            hours = self._hours.get(state.site) if state.site else None
            closed = hours is not None and now is not None and not hours.is_open(now)
            if memo is not None:
                memo[state.site] = closed
        availability = Availability.OFFLINE_EXPECTED if closed else Availability.OFFLINE_UNEXPECTED
        return EffectivePresence(PresenceState.OFFLINE, reason, availability)

    def counts(self, now: datetime | None = None) -> Counter[tuple[DeviceKind, Availability]]:
        """Devices by (kind, availability at ``now``)."""
        return Counter(
            (d.kind, self.effective(d, now).availability) for d in self._devices.values()
        )


def _with(mapping: Mapping[str, V], key: str, value: V | None) -> dict[str, V]:
    """A copy of ``mapping`` with ``key`` set to ``value``, or without it for None."""
    copy = dict(mapping)
    if value is None:
        copy.pop(key, None)
    else:
        copy[key] = value
    return copy
