"""Simulated terminals' USB peripherals: virtual devices read by the real drivers.

The trouble model acts on the virtual devices and the drivers report it; heartbeats list the same
peripherals per kind as before, USB ones as the drivers read them; a review pad's rating goes
through the virtual pad and the agent's link, bound to its case. One test runs a simulated
kiosk against a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest

from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.agent.runner import Agent, AgentTiming
from edge.protocol import (
    Channel,
    DeviceEvent,
    DeviceKind,
    EventType,
    Heartbeat,
    PeripheralState,
    PeripheralStatus,
    Record,
    Review,
    Transaction,
    TransactionOutcome,
    decode,
    decode_records,
)
from edge.protocol import topics as wire
from edge.simulator import fleet
from edge.simulator.activity import RatedCase, VisitGenerator, run_activity
from edge.simulator.district import SimulatedTerminal
from edge.simulator.health import PERIPHERALS, SimulatedHealth
from edge.simulator.pad import SimulatedPadLink
from edge.simulator.peripherals import (
    PeripheralTrouble,
    SimulatedUsb,
    TroubledBridge,
    simulated_usb,
)
from firmware_bridge.catalog import TERMINAL_PERIPHERALS, default_slots
from firmware_bridge.drivers.review_pad import THANK_YOU_TEXT
from firmware_bridge.simulated.terminal import simulated_peripherals

T = TypeVar("T")
KINDS = [k for k in DeviceKind if k is not DeviceKind.UNKNOWN]
NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
WAIT_S = 20.0
TROUBLE_STATES = {
    "paper_near_end": PeripheralState.DEGRADED,
    "paper_out": PeripheralState.FAULT,
    "sam_fault": PeripheralState.FAULT,
    "key_stuck": PeripheralState.DEGRADED,
    "unplugged": PeripheralState.ABSENT,
}
"""Each trouble of the model and the state the drivers report it with."""


def terminal(kind: DeviceKind, device_id: str = "t-1", window: str = "") -> SimulatedTerminal:
    return SimulatedTerminal(device_id, kind, "440117", "town", window)


def usb_of(kind: DeviceKind, seed: int = 1, window: str = "") -> SimulatedUsb:
    return simulated_usb(terminal(kind, window=window), random.Random(seed), lambda: NOW, 30.0)


class Recorder:
    """Stands in for the agent: keeps what it is asked to record."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    async def record(self, record: Record) -> int:
        self.records.append(record)
        return len(self.records)


def by_name(statuses: tuple[PeripheralStatus, ...]) -> dict[str, PeripheralStatus]:
    return {s.name: s for s in statuses}


# --- the heartbeat's peripherals --------------------------------------------------------------


def test_every_usb_peripheral_of_a_kind_is_in_its_heartbeat_list() -> None:
    for kind, usb_peripherals in TERMINAL_PERIPHERALS.items():
        assert set(usb_peripherals) <= set(PERIPHERALS[kind]), kind


@pytest.mark.parametrize("kind", KINDS)
async def test_the_heartbeat_lists_every_peripheral_usb_ones_as_the_drivers_read_them(
    kind: DeviceKind,
) -> None:
    usb = usb_of(kind)
    health = SimulatedHealth(kind, random.Random(3), usb)
    await usb.monitor.poll_once(Recorder().record)

    peripherals = health.read().peripherals

    assert peripherals is not None
    assert [(p.name, p.kind) for p in peripherals] == list(PERIPHERALS[kind])
    assert {p.state for p in peripherals} == {PeripheralState.OK}
    driven = {p.name: p.model for p in peripherals if p.name in usb.names}
    assert set(driven) == {name for name, _ in TERMINAL_PERIPHERALS[kind]}
    assert "sim" not in driven.values(), "USB statuses come from the drivers, not made up"
    assert {p.model for p in peripherals if p.name not in usb.names} <= {"sim"}


@pytest.mark.parametrize("kind", KINDS)
def test_the_drivers_report_every_trouble_the_model_makes(kind: DeviceKind) -> None:
    usb = usb_of(kind)
    bridge = usb.monitor.bridge
    bridge.poll()  # the terminal starts with every device plugged in
    for name, troubles in usb.trouble.troubles.items():
        for trouble in troubles:
            usb.trouble.begin(name, trouble.reason)
            read = by_name(bridge.poll())[name]
            assert (read.state, read.reason) == (TROUBLE_STATES[trouble.reason], trouble.reason)
            usb.trouble.end(name)
            assert by_name(bridge.poll())[name].state is PeripheralState.OK
    bridge.close()


def test_the_model_names_only_troubles_the_drivers_tell_apart() -> None:
    for kind in KINDS:
        usb = usb_of(kind)
        for troubles in usb.trouble.troubles.values():
            assert {t.reason for t in troubles} <= set(TROUBLE_STATES)
            assert len({t.reason for t in troubles}) == len(troubles)


def trouble_history(seed: int, steps: int) -> list[dict[str, str]]:
    simulated = simulated_peripherals(default_slots(DeviceKind.STATION_PC), serial_prefix="t-1")
    model = PeripheralTrouble(simulated, random.Random(seed))
    history = []
    for _ in range(steps):
        model.step()
        history.append({name: t.reason for name, t in model.current.items()})
    return history


def test_the_trouble_model_is_deterministic_per_seed_and_troubles_come_and_go() -> None:
    first = trouble_history(7, 3000)

    assert first == trouble_history(7, 3000)
    assert first != trouble_history(8, 3000)
    went_wrong = {name for snapshot in first for name in snapshot}
    recovered = {
        name for before, after in itertools.pairwise(first) for name in before if name not in after
    }
    assert went_wrong, "nothing went wrong in 3000 readings"
    assert recovered & went_wrong


# --- a kiosk on a real broker -----------------------------------------------------------------


async def test_a_kiosk_out_of_paper_says_so_in_its_heartbeat_and_records_an_event(
    broker: BrokerSettings, device_prefix: str, tmp_path: Path
) -> None:
    device_id = f"{device_prefix}-kiosk"
    address = mqtt.BrokerAddress(broker.host, broker.port)
    [agent] = fleet.build_agents(
        [terminal(DeviceKind.KIOSK, device_id)],
        address,
        AgentTiming(heartbeat_interval_s=0.2),
        1,
        tmp_path,
    )
    trouble_of(agent).begin("printer0", "paper_out")
    printer_read: list[PeripheralStatus] = []
    events: list[DeviceEvent] = []
    stop = asyncio.Event()
    try:
        async with mqtt.connect(address, mqtt.SessionOptions(client_id=f"cp-{device_id}")) as cp:
            await cp.subscribe(wire.uplink(device_id, Channel.HEALTH))
            await cp.subscribe(wire.uplink(device_id, Channel.EVENT), qos=1)

            async def receive() -> None:
                async for message in cp.messages():
                    channel = wire.parse(message.topic).channel
                    if channel is Channel.HEALTH:
                        beat = decode(Channel.HEALTH, message.payload)
                        assert isinstance(beat, Heartbeat)
                        printer_read.extend(
                            p for p in beat.peripherals or () if p.name == "printer0"
                        )
                    else:
                        events.extend(
                            r.payload
                            for r in decode_records(Channel.EVENT, message.payload)
                            if isinstance(r.payload, DeviceEvent)
                        )

            receiving = asyncio.create_task(receive())
            running = asyncio.create_task(fleet.run_fleet([agent], stop))
            async with asyncio.timeout(WAIT_S):
                while not (printer_read and events):  # noqa: ASYNC110 - filled by receive()
                    await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(running, WAIT_S)
            receiving.cancel()
            await asyncio.gather(receiving, return_exceptions=True)
    finally:
        stop.set()
        fleet.close_agents([agent])
    assert (printer_read[0].state, printer_read[0].reason) == (PeripheralState.FAULT, "paper_out")
    assert printer_read[0].model == "termfleet virtual receipt printer"
    event = events[0]
    assert event.peripheral == "printer0"
    assert (event.type, event.peripheral_state) == (
        EventType.PERIPHERAL_CHANGED,
        PeripheralState.FAULT,
    )
    assert event.details == {"reason": "paper_out"}


def trouble_of(agent: Agent) -> PeripheralTrouble:
    assert agent.peripherals is not None
    bridge = agent.peripherals.bridge
    assert isinstance(bridge, TroubledBridge)
    return bridge.trouble


def test_the_fleet_polls_peripherals_once_a_heartbeat(tmp_path: Path) -> None:
    timing = AgentTiming(heartbeat_interval_s=12.5)
    agents = fleet.build_agents(
        [terminal(k, f"t-{k.value}") for k in KINDS],
        mqtt.BrokerAddress("127.0.0.1", 1),
        timing,
        1,
        tmp_path,
    )
    try:
        for agent in agents:
            assert agent.peripherals is not None
            assert agent.peripherals.interval_s == timing.heartbeat_interval_s
        pads = {a.identity.kind for a in agents if isinstance(a.review_pad, SimulatedPadLink)}
        assert pads == {DeviceKind.REVIEW_PAD, DeviceKind.STATION_PC}
    finally:
        fleet.close_agents(agents)


# --- reviews through the virtual pad ----------------------------------------------------------


def pad_link(kind: DeviceKind = DeviceKind.REVIEW_PAD, window: str = "07") -> SimulatedPadLink:
    link = usb_of(kind, window=window).pad
    assert link is not None
    return link


def rated_cases(kind: DeviceKind, seed: int, count: int, window: str) -> list[RatedCase]:
    generator = VisitGenerator("t-1", kind, random.Random(seed), window=window, rates_on_pad=True)
    cases: list[RatedCase] = []
    while len(cases) < count:
        visit = generator.next_visit()
        if visit.rated is not None:
            cases.append(visit.rated)
    return cases


async def test_a_rating_pressed_on_the_virtual_pad_is_a_review_of_its_case() -> None:
    link = pad_link()
    [case] = rated_cases(DeviceKind.REVIEW_PAD, 1, 1, "07")
    recorder = Recorder()

    review = await link.rate(case, recorder.record)

    assert recorder.records == [review]
    assert review is not None
    assert review.at is not None
    assert review.case_number == case.notice.case_number
    assert (review.item_code, review.window, review.staff_id) == (
        case.notice.item_code,
        "07",
        case.notice.staff_id,
    )
    assert (review.rating, review.institution) == (case.rating, case.notice.institution)
    assert link.binder.awaiting is None
    assert link.pad.shown_text == THANK_YOU_TEXT


async def test_pad_reviews_are_the_ones_the_activity_model_would_record_directly() -> None:
    link = pad_link()
    recorder = Recorder()
    stop = asyncio.Event()
    visits = VisitGenerator("t-1", DeviceKind.REVIEW_PAD, random.Random(5), window="07")
    gaps = random.Random(9)
    task = asyncio.create_task(run_activity(recorder, visits, 6_000, stop, gaps, pad=link))  # type: ignore[arg-type]
    async with asyncio.timeout(WAIT_S):
        while len(recorder.records) < 20:  # noqa: ASYNC110 - filled by run_activity
            await asyncio.sleep(0.01)
    stop.set()
    await task

    expected = [
        c.review() for c in rated_cases(DeviceKind.REVIEW_PAD, 5, len(recorder.records), "07")
    ]
    assert [msgspec.structs.replace(r, at=None) for r in recorder.records] == expected
    assert all(r.at is not None for r in recorder.records)


async def test_a_station_pc_rates_its_completed_transactions_on_its_pad() -> None:
    link = pad_link(DeviceKind.STATION_PC, window="")
    generator = VisitGenerator("t-1", DeviceKind.STATION_PC, random.Random(2), rates_on_pad=True)
    recorder = Recorder()
    for _ in range(30):
        visit = generator.next_visit()
        [transaction] = [r for r in visit.records if isinstance(r, Transaction)]
        completed = transaction.outcome is TransactionOutcome.COMPLETED
        assert (visit.rated is not None) is completed
        if visit.rated is not None:
            review = await link.rate(visit.rated, recorder.record)
            assert review is not None
            assert (review.item_code, review.institution) == (
                transaction.item_code,
                transaction.department,
            )
    assert recorder.records
    assert all(isinstance(r, Review) for r in recorder.records)


async def test_a_press_the_pad_does_not_take_records_nothing() -> None:
    usb = usb_of(DeviceKind.REVIEW_PAD, window="07")
    link = usb.pad
    assert link is not None
    first, second = rated_cases(DeviceKind.REVIEW_PAD, 1, 2, "07")
    recorder = Recorder()
    usb.trouble.begin("keys0", "key_stuck")
    [stuck] = link.pad.stuck_keys
    assert await link.rate(RatedCase(first.notice, stuck), recorder.record) is None
    usb.trouble.begin("keys0", "unplugged")
    assert await link.rate(second, recorder.record) is None
    assert recorder.records == []
    usb.trouble.end("keys0")
    assert await link.rate(second, recorder.record) is not None, "back on the bus, it rates again"


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> Future[T]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


async def test_idle_pads_hold_no_worker_thread() -> None:
    # ReviewPadLink.run would keep a blocking key read in the default executor per pad.
    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    links = [pad_link() for _ in range(40)]
    tasks = [asyncio.create_task(link.run(Recorder().record)) for link in links]
    for _ in range(20):
        await asyncio.sleep(0)
    assert executor.submitted == 0
    review = await links[0].rate(
        rated_cases(DeviceKind.REVIEW_PAD, 1, 1, "07")[0], Recorder().record
    )
    assert review is not None
    assert executor.submitted > 0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
