"""The ingest's state handling on a real database, without a broker.

Heartbeats merge and order, retained presence replays, and device rows are written only when
something tracked changed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest

from control_plane import registry, state_writes
from control_plane.db import database
from control_plane.fleet import DeviceState, FleetState
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from control_plane.state_writes import LAST_SEEN_PERSIST_S
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
    await ingest.states.flush()
    stored = {s.device_id: s for s in await registry.load_states()}[DEVICE]
    # The database has the snapshot; the new CPU reading alone waits for LAST_SEEN_PERSIST_S.
    assert stored.health == full


async def test_rows_are_written_only_when_something_worth_keeping_changed(
    setup: tuple[Ingest, FleetState, Clock, list[DeviceState]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest, fleet, clock, _ = setup
    puts: list[tuple[int, bool]] = []
    real_put = ingest.states.put

    def counting_put(state: DeviceState, *, save: bool) -> None:
        puts.append((state.session, save))
        real_put(state, save=save)

    monkeypatch.setattr(ingest.states, "put", counting_put)
    await ingest.handle(
        presence_msg(Presence(state=PresenceState.ONLINE, session=3, kind=DeviceKind.KIOSK))
    )
    assert puts == [(3, True)], "a device new to the fleet: its row may be missing"
    for seq in range(1, 11):
        clock.advance(1)
        await ingest.handle(
            heartbeat_msg(Heartbeat(session=3, seq=seq, full=seq % 5 == 1, cpu_percent=10.0 + seq))
        )
    assert len(puts) == 1, "readings that change at every heartbeat wait for the interval"

    clock.advance(LAST_SEEN_PERSIST_S)
    await ingest.handle(heartbeat_msg(Heartbeat(session=3, seq=11, cpu_percent=90.0)))
    assert puts[1:] == [(3, False)], "last_seen and the readings, at least every interval"
    await ingest.handle(heartbeat_msg(Heartbeat(session=3, seq=12, peripherals=(PRINTER,))))
    assert puts[2:] == [(3, True)], "an inventory change goes with its inventory rows"
    await ingest.handle(presence_msg(Presence(state=PresenceState.OFFLINE, session=3)))
    assert puts[3:] == [(3, False)], "a presence change: the row, at once"

    await ingest.states.flush()
    stored = {s.device_id: s for s in await registry.load_states()}[DEVICE]
    memory = fleet.get(DEVICE)
    assert memory is not None
    assert stored.presence is PresenceState.OFFLINE
    assert stored.health == memory.health
    assert stored.health is not None
    assert stored.health.cpu_percent == 90.0
    assert stored.health.peripherals == (PRINTER,)
    assert stored.last_seen == memory.last_seen


async def test_retained_presence_replay_does_not_count_as_contact(
    setup: tuple[Ingest, FleetState, Clock, list[DeviceState]],
) -> None:
    ingest, fleet, _, _ = setup
    await ingest.handle(presence_msg(Presence(state=PresenceState.ONLINE, session=3), retain=True))
    state = fleet.get(DEVICE)
    assert state is not None
    assert state.presence is PresenceState.ONLINE
    assert state.last_seen is None


async def test_memory_changes_at_once_and_a_failed_write_waits_for_the_next_round(
    setup: tuple[Ingest, FleetState, Clock, list[DeviceState]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest, fleet, _, _ = setup

    async def failing_write(_batch: object) -> None:
        raise OSError("disk full")

    await ingest.handle(presence_msg(Presence(state=PresenceState.ONLINE, session=3)))
    state = fleet.get(DEVICE)
    assert state is not None
    assert state.presence is PresenceState.ONLINE  # the API sees it before the database does
    with monkeypatch.context() as patch:
        patch.setattr(state_writes, "_write", failing_write)
        with pytest.raises(OSError, match="disk full"):
            await ingest.states.flush()
    assert ingest.states.waiting == 1
    assert DEVICE not in {s.device_id for s in await registry.load_states()}
    assert await ingest.states.flush() == 1
    stored = {s.device_id: s for s in await registry.load_states()}[DEVICE]
    assert stored.presence is PresenceState.ONLINE
