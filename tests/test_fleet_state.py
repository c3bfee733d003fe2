"""FleetState: the presence ordering rule as a table, heartbeats, counts, and the metrics view."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from control_plane.fleet import Availability, DeviceState, FleetState, presence_rank
from control_plane.metrics import FleetCollector
from edge import schedule
from edge.protocol import DeviceKind, Heartbeat, OfflineReason, Presence, PresenceState

ONLINE = PresenceState.ONLINE
OFFLINE = PresenceState.OFFLINE
UNKNOWN = PresenceState.UNKNOWN
T0 = datetime(2024, 6, 11, 9, 0, tzinfo=UTC)  # a Tuesday, 17:00 in Guangzhou
DEVICE = "kiosk-440117000-01"


@dataclass(frozen=True)
class Step:
    state: PresenceState
    session: int
    kind: DeviceKind = DeviceKind.KIOSK
    agent_version: str = "1.0.0"
    applied: bool = True
    """Whether apply_presence should take this message (return a state) or ignore it (None)."""

    def presence(self) -> Presence:
        reason = OfflineReason.WILL if self.state is OFFLINE else OfflineReason.NONE
        return Presence(
            state=self.state,
            session=self.session,
            reason=reason,
            kind=self.kind,
            agent_version=self.agent_version,
        )


@dataclass(frozen=True)
class Expect:
    presence: PresenceState
    session: int
    kind: DeviceKind = DeviceKind.KIOSK
    agent_version: str = "1.0.0"


CASES: dict[str, tuple[list[Step], Expect | None]] = {
    "first online is taken": ([Step(ONLINE, 1)], Expect(ONLINE, 1)),
    "first offline is taken": ([Step(OFFLINE, 3)], Expect(OFFLINE, 3)),
    "late will of an older session is ignored": (
        [Step(ONLINE, 1), Step(ONLINE, 2), Step(OFFLINE, 1, applied=False)],
        Expect(ONLINE, 2),
    ),
    "late online of an older session is ignored": (
        [Step(ONLINE, 5), Step(ONLINE, 4, applied=False)],
        Expect(ONLINE, 5),
    ),
    "offline of the same session wins over online": (
        [Step(ONLINE, 1), Step(OFFLINE, 1)],
        Expect(OFFLINE, 1),
    ),
    "online of the same session arriving after its offline is ignored": (
        [Step(OFFLINE, 1), Step(ONLINE, 1, applied=False)],
        Expect(OFFLINE, 1),
    ),
    "newer session online after offline": (
        [Step(ONLINE, 1), Step(OFFLINE, 1), Step(ONLINE, 2)],
        Expect(ONLINE, 2),
    ),
    "a session may be skipped": (
        [Step(OFFLINE, 1), Step(ONLINE, 9)],
        Expect(ONLINE, 9),
    ),
    "duplicate online changes nothing": (
        [Step(ONLINE, 1), Step(ONLINE, 1, applied=False)],
        Expect(ONLINE, 1),
    ),
    "duplicate offline changes nothing": (
        [Step(ONLINE, 1), Step(OFFLINE, 1), Step(OFFLINE, 1, applied=False)],
        Expect(OFFLINE, 1),
    ),
    "unknown state is ignored": (
        [Step(ONLINE, 1), Step(UNKNOWN, 7, applied=False)],
        Expect(ONLINE, 1),
    ),
    "unknown state alone creates no device": ([Step(UNKNOWN, 7, applied=False)], None),
    "kind and agent version kept when the message lacks them": (
        [Step(ONLINE, 1), Step(OFFLINE, 1, kind=DeviceKind.UNKNOWN, agent_version="")],
        Expect(OFFLINE, 1),
    ),
    "kind and agent version updated when the message has them": (
        [
            Step(ONLINE, 1, kind=DeviceKind.UNKNOWN, agent_version=""),
            Step(ONLINE, 2, kind=DeviceKind.BOOTH, agent_version="1.1.0"),
        ],
        Expect(ONLINE, 2, kind=DeviceKind.BOOTH, agent_version="1.1.0"),
    ),
    "an unknown kind from a newer agent does not erase the known one": (
        [Step(ONLINE, 1), Step(ONLINE, 2, kind=DeviceKind.UNKNOWN, agent_version="2.0.0")],
        Expect(ONLINE, 2, agent_version="2.0.0"),
    ),
}


@pytest.mark.parametrize(("steps", "expected"), list(CASES.values()), ids=list(CASES))
def test_presence_ordering(steps: list[Step], expected: Expect | None) -> None:
    fleet = FleetState()
    last_applied_at: datetime | None = None
    for n, step in enumerate(steps):
        received_at = T0 + timedelta(seconds=n)
        before = fleet.get(DEVICE)

        result = fleet.apply_presence(DEVICE, step.presence(), received_at)

        if step.applied:
            assert result is not None, f"step {n} ({step}) was ignored"
            assert result == fleet.get(DEVICE)
            last_applied_at = received_at
        else:
            assert result is None, f"step {n} ({step}) was applied"
            assert fleet.get(DEVICE) == before, "an ignored message changed the state"

    final = fleet.get(DEVICE)
    if expected is None:
        assert final is None
        assert len(fleet) == 0
        return
    assert final == DeviceState(
        device_id=DEVICE,
        kind=expected.kind,
        presence=expected.presence,
        session=expected.session,
        agent_version=expected.agent_version,
        last_seen=last_applied_at,
        offline_reason=OfflineReason.WILL if expected.presence is OFFLINE else OfflineReason.NONE,
    )


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ((1, ONLINE), (1, OFFLINE)),
        ((1, OFFLINE), (2, ONLINE)),
        ((1, ONLINE), (2, ONLINE)),
        ((0, UNKNOWN), (1, ONLINE)),
    ],
)
def test_presence_rank_orders_by_session_then_offline_above_online(
    lower: tuple[int, PresenceState], higher: tuple[int, PresenceState]
) -> None:
    assert presence_rank(*lower) < presence_rank(*higher)


def test_devices_are_kept_apart() -> None:
    fleet = FleetState()
    fleet.apply_presence("a", Presence(state=ONLINE, session=5, kind=DeviceKind.KIOSK), T0)

    assert fleet.apply_presence("b", Presence(state=ONLINE, session=1), T0) is not None
    assert len(fleet) == 2
    assert {d.device_id: d.session for d in fleet} == {"a": 5, "b": 1}


def test_state_can_start_from_stored_devices() -> None:
    stored = DeviceState("a", DeviceKind.KIOSK, OFFLINE, session=4, agent_version="1.0.0")
    fleet = FleetState([stored])

    assert fleet.apply_presence("a", Presence(state=ONLINE, session=4), T0) is None
    updated = fleet.apply_presence("a", Presence(state=ONLINE, session=5), T0)
    assert updated is not None
    assert (updated.presence, updated.kind, updated.agent_version) == (
        ONLINE,
        DeviceKind.KIOSK,
        "1.0.0",
    )


# --- heartbeats -------------------------------------------------------------------------------


@pytest.mark.parametrize("presence", [ONLINE, OFFLINE])
def test_heartbeat_records_last_seen_without_flipping_presence(presence: PresenceState) -> None:
    fleet = FleetState()
    fleet.apply_presence(DEVICE, Presence(state=presence, session=3, kind=DeviceKind.KIOSK), T0)
    later = T0 + timedelta(minutes=5)

    updated = fleet.apply_heartbeat(DEVICE, Heartbeat(seq=9, agent_version="1.0.1"), later)

    assert updated is not None
    assert updated == fleet.get(DEVICE)
    assert updated.presence is presence
    assert updated.session == 3
    assert updated.kind is DeviceKind.KIOSK
    assert updated.last_seen == later
    assert updated.agent_version == "1.0.1"


def test_heartbeat_diff_without_version_keeps_the_known_one() -> None:
    fleet = FleetState()
    fleet.apply_presence(DEVICE, Presence(state=ONLINE, session=1, agent_version="1.0.0"), T0)

    updated = fleet.apply_heartbeat(DEVICE, Heartbeat(seq=2, cpu_percent=3.0), T0)

    assert updated is not None
    assert updated.agent_version == "1.0.0"


def test_heartbeat_from_an_unseen_device_records_it_with_unknown_presence() -> None:
    fleet = FleetState()

    updated = fleet.apply_heartbeat(DEVICE, Heartbeat(seq=1), T0)

    assert updated == DeviceState(DEVICE, last_seen=T0, health=Heartbeat(seq=1))
    assert updated.presence is UNKNOWN
    assert fleet.apply_presence(DEVICE, Presence(state=ONLINE, session=1), T0) is not None


# --- counts and metrics -----------------------------------------------------------------------


def populated_fleet() -> FleetState:
    fleet = FleetState()
    plan = [
        ("k1", DeviceKind.KIOSK, ONLINE),
        ("k2", DeviceKind.KIOSK, ONLINE),
        ("k3", DeviceKind.KIOSK, OFFLINE),
        ("p1", DeviceKind.REVIEW_PAD, ONLINE),
        ("s1", DeviceKind.STATION_PC, OFFLINE),
        ("s2", DeviceKind.STATION_PC, OFFLINE),
    ]
    for device_id, kind, state in plan:
        fleet.apply_presence(device_id, Presence(state=state, session=1, kind=kind), T0)
    fleet.apply_heartbeat("x1", Heartbeat(seq=1), T0)  # heard from, never announced itself
    return fleet


EXPECTED_COUNTS = {
    (DeviceKind.KIOSK, Availability.ONLINE): 2,
    (DeviceKind.KIOSK, Availability.OFFLINE_UNEXPECTED): 1,
    (DeviceKind.REVIEW_PAD, Availability.ONLINE): 1,
    (DeviceKind.STATION_PC, Availability.OFFLINE_UNEXPECTED): 2,
    (DeviceKind.UNKNOWN, Availability.UNKNOWN): 1,
}


def test_counts_by_kind_and_presence() -> None:
    assert populated_fleet().counts() == Counter(EXPECTED_COUNTS)


def test_counts_of_an_empty_fleet() -> None:
    assert FleetState().counts() == Counter()


def scrape(fleet: FleetState) -> dict[tuple[str, str, str], float]:
    """termfleet_devices by (kind, level, presence), of everything the collector exposes."""
    registry = CollectorRegistry()
    registry.register(FleetCollector(fleet, lambda: T0))
    text = generate_latest(registry).decode()
    samples: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "termfleet_devices":
            continue
        assert family.type == "gauge"
        for sample in family.samples:
            key = (sample.labels["kind"], sample.labels["level"], sample.labels["presence"])
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


LEVELS = ("district", "town", "village", "none")


def test_collector_exposes_every_kind_level_and_presence_with_the_counts() -> None:
    samples = scrape(populated_fleet())

    every = {
        (k.value, level, p.value) for k in DeviceKind for level in LEVELS for p in Availability
    }
    assert set(samples) == every
    assert len(samples) == 80
    # No site known: every device stands in no hall.
    expected = {(k.value, "none", p.value): float(n) for (k, p), n in EXPECTED_COUNTS.items()}
    assert {key: value for key, value in samples.items() if value} == expected
    assert sum(samples.values()) == 7


def test_collector_exposes_zeros_for_an_empty_fleet() -> None:
    samples = scrape(FleetState())

    assert len(samples) == 80
    assert set(samples.values()) == {0.0}


def test_collector_reads_the_fleet_at_scrape_time() -> None:
    fleet = FleetState()
    registry = CollectorRegistry()
    registry.register(FleetCollector(fleet, lambda: T0))
    fleet.apply_presence("k1", Presence(state=ONLINE, session=1, kind=DeviceKind.KIOSK), T0)

    def kiosks(presence: str) -> float | None:
        labels = {"kind": "kiosk", "level": "none", "presence": presence}
        return registry.get_sample_value("termfleet_devices", labels)

    first = kiosks("online")
    fleet.apply_presence("k1", Presence(state=OFFLINE, session=1, kind=DeviceKind.KIOSK), T0)

    assert (first, kiosks("online"), kiosks("offline_unexpected")) == (1.0, 0.0, 1.0)


# Silence: an online device that is not heard from counts as offline.

TIMEOUT_S = 90.0


def silent_fleet() -> tuple[FleetState, DeviceState]:
    fleet = FleetState(heartbeat_timeout_s=TIMEOUT_S, started_at=T0)
    fleet.apply_presence(DEVICE, Presence(state=ONLINE, session=1, kind=DeviceKind.KIOSK), T0)
    found = fleet.get(DEVICE)
    assert found is not None
    return fleet, found


@pytest.mark.parametrize(
    ("silent_for_s", "presence", "reason"),
    [(0, ONLINE, ""), (TIMEOUT_S, ONLINE, ""), (TIMEOUT_S + 1, OFFLINE, "silent")],
)
def test_online_device_goes_silent_after_the_timeout(
    silent_for_s: float, presence: PresenceState, reason: str
) -> None:
    fleet, state = silent_fleet()
    now = T0 + timedelta(seconds=silent_for_s)

    effective = fleet.effective(state, now)

    assert (effective.state, effective.reason) == (presence, reason)
    availability = Availability.ONLINE if presence is ONLINE else Availability.OFFLINE_UNEXPECTED
    assert fleet.counts(now) == Counter({(DeviceKind.KIOSK, availability): 1})


def test_a_heartbeat_ends_the_silence() -> None:
    fleet, _ = silent_fleet()
    later = T0 + timedelta(seconds=TIMEOUT_S * 2)
    updated = fleet.apply_heartbeat(DEVICE, Heartbeat(session=1, seq=1), later)
    assert updated is not None
    assert fleet.effective(updated, later + timedelta(seconds=1)).state is ONLINE


def test_silence_counts_from_the_control_plane_start_when_contact_is_older() -> None:
    stale = DeviceState(DEVICE, presence=ONLINE, session=1, last_seen=T0 - timedelta(hours=5))
    fleet = FleetState([stale], heartbeat_timeout_s=TIMEOUT_S, started_at=T0)
    assert fleet.effective(stale, T0 + timedelta(seconds=30)).state is ONLINE
    assert fleet.effective(stale, T0 + timedelta(seconds=TIMEOUT_S + 1)).reason == "silent"


def test_offline_keeps_its_reported_reason_and_no_timeout_means_no_silence() -> None:
    fleet = FleetState()
    fleet.apply_presence(
        DEVICE, Presence(state=OFFLINE, session=1, reason=OfflineReason.SHUTDOWN), T0
    )
    state = fleet.get(DEVICE)
    assert state is not None
    assert fleet.effective(state, T0).reason == "shutdown"
    fleet.apply_presence(DEVICE, Presence(state=ONLINE, session=2), T0)
    online = fleet.get(DEVICE)
    assert online is not None
    assert fleet.effective(online, T0 + timedelta(days=1)).state is ONLINE


# Opening hours: offline while the site is closed is expected; while open, or unknown, it is not.

STATION_HOURS = schedule.parse(
    "mon-fri 09:00-12:00,14:30-17:30", overrides=[(date(2024, 6, 10), "closed")]
)
"""A village station; Monday 2024-06-10 was the Dragon Boat Festival (端午节), closed."""


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 6, day, hour, minute, tzinfo=schedule.DEFAULT_ZONE)


@pytest.mark.parametrize(
    ("moment", "reason", "site", "availability"),
    [
        (local(11, 10), OfflineReason.WILL, "S1", Availability.OFFLINE_UNEXPECTED),
        (local(11, 13), OfflineReason.WILL, "S1", Availability.OFFLINE_EXPECTED),  # lunch break
        (local(11, 18), OfflineReason.SHUTDOWN, "S1", Availability.OFFLINE_EXPECTED),
        (local(11, 17, 29), OfflineReason.SHUTDOWN, "S1", Availability.OFFLINE_UNEXPECTED),
        (local(15, 10), OfflineReason.WILL, "S1", Availability.OFFLINE_EXPECTED),  # Saturday
        (local(10, 10), OfflineReason.WILL, "S1", Availability.OFFLINE_EXPECTED),  # holiday
        (local(11, 22), OfflineReason.WILL, "", Availability.OFFLINE_UNEXPECTED),  # no site
        (local(11, 22), OfflineReason.WILL, "S9", Availability.OFFLINE_UNEXPECTED),  # no hours
    ],
    ids=["open", "lunch", "evening", "last-minute", "saturday", "holiday", "unplaced", "no-hours"],
)
def test_offline_is_expected_only_while_the_site_is_closed(
    moment: datetime, reason: OfflineReason, site: str, availability: Availability
) -> None:
    fleet = FleetState()
    fleet.set_opening_hours({"S1": STATION_HOURS})
    fleet.apply_presence(DEVICE, Presence(state=OFFLINE, session=1, reason=reason), T0)
    fleet.place({DEVICE: site})
    state = fleet.get(DEVICE)
    assert state is not None

    effective = fleet.effective(state, moment)

    assert (effective.state, effective.reason, effective.availability) == (
        OFFLINE,
        reason.value,
        availability,
    )


def test_a_silent_device_at_a_closed_site_is_expected_offline() -> None:
    fleet = FleetState(heartbeat_timeout_s=TIMEOUT_S, started_at=local(11, 17))
    fleet.set_opening_hours({"S1": STATION_HOURS})
    fleet.apply_presence(DEVICE, Presence(state=ONLINE, session=1), local(11, 17))
    fleet.place({DEVICE: "S1"})
    state = fleet.get(DEVICE)
    assert state is not None
    during = fleet.effective(state, local(11, 17) + timedelta(seconds=30))
    after = fleet.effective(state, local(11, 19))
    assert (during.state, during.availability) == (ONLINE, Availability.ONLINE)
    assert (after.reason, after.availability) == ("silent", Availability.OFFLINE_EXPECTED)


def test_placing_a_device_the_fleet_does_not_know_adds_nothing() -> None:
    fleet = FleetState()
    fleet.place({"never-seen": "S1"})
    assert len(fleet) == 0


def test_a_device_lies_where_its_sites_node_lies() -> None:
    fleet = FleetState([DeviceState("a", site="S1"), DeviceState("b", site="S9"), DeviceState("c")])
    fleet.set_site_paths({"S1": "/44/4401/"})

    paths = {state.device_id: fleet.site_path(state) for state in fleet}

    assert paths == {"a": "/44/4401/", "b": None, "c": None}  # S9 unknown, c placed nowhere
