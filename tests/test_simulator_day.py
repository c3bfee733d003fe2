"""The simulated day: terminals switched on around their site's hours, visited while it is open."""

from __future__ import annotations

import asyncio
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.agent.runner import AgentTiming
from edge.protocol import (
    Channel,
    DeviceKind,
    OfflineReason,
    Presence,
    PresenceState,
    Record,
    decode,
)
from edge.protocol import topics as wire
from edge.schedule import DEFAULT_ZONE, parse
from edge.simulator import day, fleet
from edge.simulator.activity import VisitGenerator, run_activity
from edge.simulator.district import SimulatedTerminal, opening_hours, terminals

STATION = parse(
    "mon-fri 09:00-12:00,14:30-17:30", overrides=[(date(2024, 6, 10), "closed")]
)  # 2024-06-10, a Monday, was the Dragon Boat Festival (端午节)
ALWAYS = parse("24/7")


def local(day_of_june: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 6, day_of_june, hour, minute, tzinfo=DEFAULT_ZONE)


@pytest.mark.parametrize(
    ("moment", "on"),
    [
        (local(11, 8, 44), False),  # Tuesday, before the 15 minutes ahead of opening
        (local(11, 8, 45), True),
        (local(11, 13), True),  # lunch break: the machines stay on
        (local(11, 17, 45), True),
        (local(11, 17, 46), False),
        (local(15, 10), False),  # Saturday
        (local(10, 10), False),  # the holiday
    ],
)
def test_terminals_are_switched_on_around_opening_hours(moment: datetime, *, on: bool) -> None:
    assert day.powered(STATION, moment) is on
    assert day.powered(ALWAYS, moment)


@pytest.mark.parametrize(
    ("hours", "moment", "factor"),
    [
        (STATION, local(11, 8, 50), 0.0),  # on, not open yet
        (STATION, local(11, 9, 30), day.MORNING_PEAK_FACTOR),
        (STATION, local(11, 13), 0.0),  # lunch
        (STATION, local(11, 15), 1.0),
        (STATION, local(15, 10), 0.0),
        (ALWAYS, local(11, 15), 1.0),
        (ALWAYS, local(11, 3), day.NIGHT_FACTOR),
        (ALWAYS, local(11, 22, 30), day.NIGHT_FACTOR),
    ],
)
def test_visits_follow_the_day(hours: object, moment: datetime, factor: float) -> None:
    assert day.visit_factor(STATION if hours is STATION else ALWAYS, moment) == factor


def test_the_demo_district_has_hours_for_every_terminal_site() -> None:
    hours = opening_hours("conghua")
    assert {t.site_code for t in terminals("conghua")} <= set(hours)
    tuesday_ten = local(11, 10)
    assert all(h.is_open(tuesday_ten) for h in hours.values())
    assert not any(h.is_open(local(16, 10)) for h in hours.values())  # Sunday


class Recorder:
    """Stands in for the agent: keeps what it is asked to record."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    async def record(self, payload: Record) -> int:
        self.records.append(payload)
        return len(self.records)


async def _visits_for(seconds: float, busy: float) -> int:
    recorder = Recorder()
    stop = asyncio.Event()
    rng = random.Random(3)
    visits = VisitGenerator("kiosk-1", DeviceKind.KIOSK, rng)
    task = asyncio.create_task(
        run_activity(recorder, visits, 6_000, stop, rng, busy=lambda: busy, peak=2.0)  # type: ignore[arg-type]
    )
    await asyncio.sleep(seconds)
    stop.set()
    await task
    return len(recorder.records)


async def test_a_closed_site_gets_no_visits_and_an_open_one_does() -> None:
    assert await _visits_for(0.3, busy=0.0) == 0
    assert await _visits_for(0.3, busy=2.0) > 0


async def test_a_terminal_comes_online_at_opening_and_shuts_down_at_closing(
    broker: BrokerSettings, device_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fleet, "POWER_CHECK_S", 0.05)
    device_id = f"{device_prefix}-station"
    now = [local(11, 7)]  # Tuesday 07:00: switched off
    address = mqtt.BrokerAddress(broker.host, broker.port)
    terminal = SimulatedTerminal(device_id, DeviceKind.STATION_PC, "S1", "village")
    agents = fleet.build_agents(
        [terminal], address, AgentTiming(heartbeat_interval_s=60), 1, tmp_path
    )
    seen: list[Presence] = []
    changed = asyncio.Event()

    async def watch(conn: mqtt.Connection) -> None:
        async for message in conn.messages():
            presence = decode(Channel.PRESENCE, message.payload)
            assert isinstance(presence, Presence)
            seen.append(presence)
            changed.set()

    async def until(state: PresenceState) -> Presence:
        while not seen or seen[-1].state is not state:
            changed.clear()
            await asyncio.wait_for(changed.wait(), 10)
        return seen[-1]

    stop = asyncio.Event()
    watcher_options = mqtt.SessionOptions(client_id=f"{device_prefix}-watch")
    try:
        async with mqtt.connect(address, watcher_options) as conn:
            await conn.subscribe(wire.uplink(device_id, Channel.PRESENCE))
            watcher = asyncio.create_task(watch(conn))
            running = asyncio.create_task(
                fleet.run_fleet(agents, stop, hours={device_id: STATION}, clock=lambda: now[0])
            )
            await asyncio.sleep(0.5)
            assert seen == []  # still switched off
            now[0] = local(11, 8, 50)
            online = await until(PresenceState.ONLINE)
            now[0] = local(11, 18)
            offline = await until(PresenceState.OFFLINE)
            assert offline.reason is OfflineReason.SHUTDOWN
            assert offline.session == online.session
            now[0] = local(12, 9) + timedelta(minutes=1)  # Wednesday morning
            again = await until(PresenceState.ONLINE)
            assert again.session > online.session
            stop.set()
            await asyncio.wait_for(running, 10)
            watcher.cancel()
    finally:
        fleet.close_agents(agents)
