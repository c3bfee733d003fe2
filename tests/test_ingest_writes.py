"""The ingest's state handling on a real database, without a broker.

Heartbeats merge and order, retained presence replays, and device rows are written only when
something tracked changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from control_plane import registry
from control_plane.db import database
from control_plane.fleet import DeviceState, FleetState
from control_plane.ingest import LAST_SEEN_PERSIST_S, Ingest
from control_plane.metrics import ControlPlaneMetrics
from edge.mqtt import Incoming
from edge.protocol import (
    Channel,
    DeviceKind,
    Heartbeat,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
    Presence,
    PresenceState,
    encode,
)
from edge.protocol import topics as wire

DEVICE = "kiosk-440117000-01"
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
PRINTER = PeripheralStatus(
    name="printer0", kind=PeripheralKind.RECEIPT_PRINTER, state=PeripheralState.OK
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def setup(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Ingest, FleetState, Clock, list[DeviceState]]]:
    saved: list[DeviceState] = []
    real_save: Callable[[DeviceState], object] = registry.save_state

    async def counting_save(state: DeviceState) -> None:
        saved.append(state)
        await real_save(state)  # type: ignore[misc]

    monkeypatch.setattr(registry, "save_state", counting_save)
    async with database(database_url):
        fleet = FleetState()
        clock = Clock()
        yield Ingest(fleet, ControlPlaneMetrics(fleet), clock=clock), fleet, clock, saved


def heartbeat_msg(hb: Heartbeat) -> Incoming:
    return Incoming(wire.uplink(DEVICE, Channel.HEALTH), encode(hb), retain=False)


def presence_msg(p: Presence, *, retain: bool = False) -> Incoming:
    return Incoming(wire.uplink(DEVICE, Channel.PRESENCE), encode(p), retain=retain)


async def test_diffs_merge_over_the_snapshot_and_stale_heartbeats_are_ignored(
    setup: tuple[Ingest, FleetState, Clock, list[DeviceState]],
) -> None:
    ingest, fleet, clock, _ = setup
    full = Heartbeat(session=3, seq=1, full=True, cpu_percent=10.0, peripherals=(PRINTER,))
    await ingest.handle(heartbeat_msg(full))
    clock.advance(1)
    await ingest.handle(heartbeat_msg(Heartbeat(session=3, seq=2, cpu_percent=55.0)))
    clock.advance(1)
    # An older heartbeat that arrives late (QoS 0 on a flaky link) changes nothing.
    await ingest.handle(heartbeat_msg(Heartbeat(session=3, seq=1, full=True, cpu_percent=1.0)))

    state = fleet.get(DEVICE)
    assert state is not None
    assert state.health is not None
    assert state.health.cpu_percent == 55.0
    assert state.health.peripherals == (PRINTER,)
    assert state.last_seen == T0 + timedelta(seconds=1)
    stored = {s.device_id: s for s in await registry.load_states()}[DEVICE]
    assert stored.health == state.health


async def test_rows_are_written_only_when_something_tracked_changed(
    setup: tuple[Ingest, FleetState, Clock, list[DeviceState]],
) -> None:
    ingest, _, clock, saved = setup
    await ingest.handle(
        presence_msg(Presence(state=PresenceState.ONLINE, session=3, kind=DeviceKind.KIOSK))
    )
    await ingest.handle(heartbeat_msg(Heartbeat(session=3, seq=1, full=True, cpu_percent=10.0)))
    assert len(saved) == 2  # a new device, then its first health
    for seq in range(2, 12):
        clock.advance(1)
        await ingest.handle(
            heartbeat_msg(Heartbeat(session=3, seq=seq, full=seq % 5 == 0, cpu_percent=10.0))
        )
    assert len(saved) == 2, "unchanged heartbeats must not be written"

    await ingest.handle(heartbeat_msg(Heartbeat(session=3, seq=12, cpu_percent=90.0)))
    assert len(saved) == 3
    clock.advance(LAST_SEEN_PERSIST_S)
    await ingest.handle(heartbeat_msg(Heartbeat(session=3, seq=13)))
    assert len(saved) == 4, "last_seen reaches the database at least every LAST_SEEN_PERSIST_S"
    assert saved[-1].last_seen == clock.now


async def test_retained_presence_replay_does_not_count_as_contact(
    setup: tuple[Ingest, FleetState, Clock, list[DeviceState]],
) -> None:
    ingest, fleet, _, _ = setup
    await ingest.handle(presence_msg(Presence(state=PresenceState.ONLINE, session=3), retain=True))
    state = fleet.get(DEVICE)
    assert state is not None
    assert state.presence is PresenceState.ONLINE
    assert state.last_seen is None


async def test_a_failed_write_leaves_memory_unchanged_and_is_counted(
    setup: tuple[Ingest, FleetState, Clock, list[DeviceState]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest, fleet, _, _ = setup

    async def failing_save(_state: DeviceState) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(registry, "save_state", failing_save)
    await ingest._handle_counted(presence_msg(Presence(state=PresenceState.ONLINE, session=3)))  # noqa: SLF001
    assert fleet.get(DEVICE) is None
    assert ingest._metrics.ingest_errors._value.get() == 1  # noqa: SLF001
