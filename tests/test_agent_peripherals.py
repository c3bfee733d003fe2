"""The agent and its peripherals: config, the monitor, self-tests, and the review pad's ratings.

Layers 1 and 2 (pure changes and events; drivers on the simulated bus), one test through the
real libusb with no devices, and one through a real Mosquitto: a case notice on the downlink,
a key pressed on the virtual pad, the review arriving on the uplink bound to the case.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from control_plane.services.broker import BrokerSettings
from edge import mqtt
from edge.agent.config import AgentConfig, ConfigError, load_config
from edge.agent.peripheral_setup import build_bridge, simulated_bridge, slots_of
from edge.agent.peripherals import PeripheralMonitor, change_event, changes
from edge.agent.review_pad import SHORT_PROMPT, ReviewPadLink
from edge.agent.runner import Agent, AgentIdentity, AgentTiming
from edge.agent.sessions import MemorySessionCounter
from edge.agent.startup import StartError, build_agent
from edge.agent.telemetry import SystemHealth
from edge.protocol import (
    CaseNotice,
    Channel,
    DeviceEvent,
    DeviceKind,
    EventType,
    PeripheralKind,
    PeripheralState,
    PeripheralStatus,
    Rating,
    Review,
    Severity,
    decode_records,
    encode,
)
from edge.protocol import topics as wire
from edge.protocol.commands import CHECK_PASSED
from firmware_bridge.bridge import NOT_FOUND, PeripheralBridge
from firmware_bridge.simulated import SimulatedBackend
from firmware_bridge.simulated.id_reader import VirtualIdCardReader
from firmware_bridge.simulated.printer import VirtualReceiptPrinter
from firmware_bridge.simulated.review_pad import VirtualReviewPad

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
WAIT_S = 20.0


def config(kind: DeviceKind = DeviceKind.KIOSK, peripherals: str = "simulated") -> AgentConfig:
    return AgentConfig(device_id="dev-1", kind=kind, peripherals=peripherals)  # type: ignore[arg-type]


def status(name: str, state: PeripheralState, reason: str = "") -> PeripheralStatus:
    return PeripheralStatus(
        name=name, kind=PeripheralKind.RECEIPT_PRINTER, state=state, reason=reason
    )


class Recorder:
    def __init__(self) -> None:
        self.records: list[object] = []

    async def __call__(self, record: object) -> int:
        self.records.append(record)
        return len(self.records)


# --- pure -------------------------------------------------------------------------------------


def test_changes_are_new_peripherals_and_new_states_or_reasons() -> None:
    ok, low = status("p0", PeripheralState.OK), status("p0", PeripheralState.DEGRADED, "near")
    other = status("p1", PeripheralState.OK)
    assert changes({}, (ok, other)) == [ok, other]
    assert changes({"p0": ok, "p1": other}, (ok, other)) == []
    assert changes({"p0": ok, "p1": other}, (low, other)) == [low]
    out = status("p0", PeripheralState.DEGRADED, "other")
    assert changes({"p0": low}, (out,)) == [out]


@pytest.mark.parametrize(
    ("state", "severity"),
    [
        (PeripheralState.OK, Severity.INFO),
        (PeripheralState.DEGRADED, Severity.WARNING),
        (PeripheralState.FAULT, Severity.CRITICAL),
        (PeripheralState.ABSENT, Severity.CRITICAL),
    ],
)
def test_a_change_event_names_the_peripheral_state_and_reason(
    state: PeripheralState, severity: Severity
) -> None:
    event = change_event(status("printer0", state, "paper_out"), NOW)
    assert (event.type, event.severity, event.at) == (EventType.PERIPHERAL_CHANGED, severity, NOW)
    assert (event.peripheral, event.peripheral_kind, event.peripheral_state) == (
        "printer0",
        PeripheralKind.RECEIPT_PRINTER,
        state,
    )
    assert event.details == {"reason": "paper_out"}
    assert event.message == f"printer0 is {state.value} (paper_out)"


# --- config -----------------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text('device_id = "dev-1"\nkind = "station_pc"\n' + text)
    return path


def test_usb_peripherals_in_the_config_replace_the_kinds_defaults(tmp_path: Path) -> None:
    loaded = load_config(
        write(
            tmp_path,
            'peripherals = "usb"\n'
            '[[usb_peripherals]]\nname = "printer0"\nkind = "receipt_printer"\n'
            'ids = ["0416:5011", "04B8:0202"]\n'
            '[[usb_peripherals]]\nname = "cam0"\nkind = "camera"\n',
        )
    )
    slots = slots_of(loaded)
    assert [(s.name, s.spec.kind, [str(i) for i in s.ids]) for s in slots] == [
        ("printer0", PeripheralKind.RECEIPT_PRINTER, ["0416:5011", "04b8:0202"]),
        ("cam0", PeripheralKind.CAMERA, []),
    ]
    assert slots[1].wanted_ids == slots[1].spec.default_ids


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('peripherals = "serial"\n', "peripherals"),
        (
            '[[usb_peripherals]]\nname = "p0"\nkind = "receipt_printer"\nids = ["0416"]\n',
            "p0: USB id '0416'",
        ),
        ('[[usb_peripherals]]\nname = "p0"\nkind = "receipt_printer"\ncolor = 1\n', "color"),
        ('[[usb_peripherals]]\nname = "P 0"\nkind = "receipt_printer"\n', "name"),
        ('[[usb_peripherals]]\nname = "p0"\nkind = "toaster"\n', "p0: unknown kind"),
        ('[[usb_peripherals]]\nname = "p0"\nkind = "camera"\n' * 2, "repeated: p0"),
        (
            '[[usb_peripherals]]\nname = "p0"\nkind = "receipt_printer"\npresence_only = true\n',
            "p0: presence_only needs its ids",
        ),
    ],
)
def test_bad_peripheral_config_is_refused_naming_what(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_a_peripheral_kind_without_a_driver_stops_the_start_with_a_clear_error(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        f'state_dir = "{tmp_path / "state"}"\nperipherals = "simulated"\n'
        '[[usb_peripherals]]\nname = "a4"\nkind = "a4_printer"\n',
    )
    with pytest.raises(StartError, match="a4: no USB driver for a4_printer peripherals"):
        build_agent(path)


def test_a_presence_only_printer_is_watched_and_never_claimed(tmp_path: Path) -> None:
    loaded = load_config(
        write(
            tmp_path,
            'peripherals = "simulated"\n'
            '[[usb_peripherals]]\nname = "printer0"\nkind = "receipt_printer"\n'
            'ids = ["1209:7e03"]\npresence_only = true\n',
        )
    )
    bridge, simulated = simulated_bridge(loaded)
    [watched] = bridge.slots
    assert (watched.spec.kind, watched.spec.claim) == (PeripheralKind.RECEIPT_PRINTER, False)
    printer = simulated.devices["printer0"]
    assert isinstance(printer, VirtualReceiptPrinter)
    printer.paper_out()
    [status] = bridge.poll()
    assert (status.state, status.reason) == (PeripheralState.OK, ""), "present; paper not seen"
    bridge.self_test("printer0")
    assert printer.pages == [], "a presence-only printer never prints a test page"


@pytest.mark.parametrize("kind", [k for k in DeviceKind if k is not DeviceKind.UNKNOWN])
def test_every_kind_of_terminal_starts_with_its_simulated_peripherals_working(
    kind: DeviceKind,
) -> None:
    bridge, simulated = simulated_bridge(config(kind))
    statuses = bridge.poll()
    assert statuses
    assert [s.name for s in statuses] == list(simulated.devices)
    assert {s.state for s in statuses} == {PeripheralState.OK}


def test_usb_mode_opens_the_real_bus_through_libusb() -> None:
    # libusb is installed by ./dev; this machine has no such peripherals, so all are not found.
    bridge = build_bridge(config(DeviceKind.STATION_PC, peripherals="usb"))
    statuses = bridge.poll()
    assert [s.name for s in statuses] == [s.name for s in slots_of(config(DeviceKind.STATION_PC))]
    assert {(s.state, s.reason) for s in statuses} == {(PeripheralState.ABSENT, NOT_FOUND)}


# --- the monitor ------------------------------------------------------------------------------


async def test_the_monitor_records_trouble_and_every_later_change() -> None:
    bridge, simulated = simulated_bridge(config())
    monitor = PeripheralMonitor(bridge, lambda: NOW)
    recorder = Recorder()
    await monitor.poll_once(recorder)
    assert recorder.records == [], "all working at start-up is no news"
    assert {s.state for s in monitor.statuses()} == {PeripheralState.OK}

    printer = simulated.devices["printer0"]
    assert isinstance(printer, VirtualReceiptPrinter)
    printer.paper_out()
    simulated.backend.unplug(simulated.devices["camera0"])
    await monitor.poll_once(recorder)
    events = [r for r in recorder.records if isinstance(r, DeviceEvent)]
    assert [(e.peripheral, e.peripheral_state, e.details) for e in events] == [
        ("printer0", PeripheralState.FAULT, {"reason": "paper_out"}),
        ("camera0", PeripheralState.ABSENT, {"reason": "unplugged"}),
    ]
    printer.refill()
    await monitor.poll_once(recorder)
    [back] = recorder.records[2:]
    assert isinstance(back, DeviceEvent)
    assert (back.peripheral, back.peripheral_state) == ("printer0", PeripheralState.OK)
    await monitor.poll_once(recorder)
    assert len(recorder.records) == 3, "no change, no event"


async def test_trouble_at_start_up_is_recorded() -> None:
    bridge, simulated = simulated_bridge(config())
    simulated.backend.unplug(simulated.devices["idreader0"])
    recorder = Recorder()
    await PeripheralMonitor(bridge, lambda: NOW).poll_once(recorder)
    [event] = recorder.records
    assert isinstance(event, DeviceEvent)
    assert (event.peripheral, event.details) == ("idreader0", {"reason": NOT_FOUND})


def test_self_tests_drive_the_peripherals_themselves() -> None:
    bridge, simulated = simulated_bridge(config())
    monitor = PeripheralMonitor(bridge, lambda: NOW)
    assert monitor.run_self_tests() == {
        "printer0.test_print": CHECK_PASSED,
        "idreader0.card_read": CHECK_PASSED,
        "camera0.present": CHECK_PASSED,
    }
    printer = simulated.devices["printer0"]
    assert isinstance(printer, VirtualReceiptPrinter)
    assert len(printer.pages) == 1, "the test print was printed"

    reader = simulated.devices["idreader0"]
    assert isinstance(reader, VirtualIdCardReader)
    reader.remove_card()
    printer.open_cover()
    simulated.backend.unplug(simulated.devices["camera0"])
    checks = monitor.run_self_tests()
    assert checks["printer0.test_print"].startswith("fail: cover_open")
    assert checks["idreader0.card_read"].startswith("fail: no_card")
    assert checks["camera0.present"].startswith("fail: unplugged")
    assert len(printer.pages) == 1, "nothing printed with the cover open"


def test_a_terminal_without_peripherals_fails_one_self_test_check() -> None:
    empty = PeripheralMonitor(PeripheralBridge(SimulatedBackend(), []), lambda: NOW)
    [(name, outcome)] = empty.run_self_tests().items()
    assert (name, outcome.startswith("fail: ")) == ("peripherals", True)


# --- the review pad ---------------------------------------------------------------------------


def notice(case_number: str = "44011720261123000001") -> CaseNotice:
    return CaseNotice(
        case_number=case_number,
        item_code="11440100MB2C91234X4440117001",
        item_name="居民身份证换领",
        staff_id="A017",
        window="W03",
        ended_at=NOW,
    )


async def until(condition: Callable[[], object], timeout_s: float = WAIT_S) -> None:
    """Wait for a condition another thread makes true (the pad link reads in a worker)."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - set by threads, not by an awaitable
            await asyncio.sleep(0.01)


@pytest.fixture
async def pad_link() -> AsyncIterator[tuple[ReviewPadLink, VirtualReviewPad, Recorder]]:
    bridge, simulated = simulated_bridge(config(DeviceKind.REVIEW_PAD))
    pad = simulated.devices["keys0"]
    assert isinstance(pad, VirtualReviewPad)
    # Opened before any press: the driver takes presses made before it opened as old news.
    assert [s.state for s in bridge.poll()] == [PeripheralState.OK]
    link = ReviewPadLink(bridge, "keys0", lambda: NOW)
    recorder = Recorder()
    task = asyncio.create_task(link.run(recorder))
    yield link, pad, recorder
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_press_after_a_case_ended_is_a_review_of_that_case(
    pad_link: tuple[ReviewPadLink, VirtualReviewPad, Recorder],
) -> None:
    link, pad, recorder = pad_link
    await link.case_ended(notice())
    assert "44011720261123000001" in pad.shown_text
    pad.press(Rating.DISSATISFIED)
    await until(lambda: recorder.records)
    [review] = recorder.records
    assert isinstance(review, Review)
    assert (review.case_number, review.rating, review.window, review.staff_id, review.at) == (
        "44011720261123000001",
        Rating.DISSATISFIED,
        "W03",
        "A017",
        NOW,
    )
    await until(lambda: pad.shown_text != "" and "44011720261123000001" not in pad.shown_text)
    pad.press(Rating.VERY_SATISFIED)  # a second rating of the same case
    await until(lambda: link.binder.repeat_ratings == 1)
    assert len(recorder.records) == 1


async def test_a_press_with_no_case_is_not_a_review(
    pad_link: tuple[ReviewPadLink, VirtualReviewPad, Recorder],
) -> None:
    link, pad, recorder = pad_link
    pad.press(Rating.SATISFIED)
    await until(lambda: link.binder.unbound_presses == 1)
    assert recorder.records == []


async def test_a_case_number_too_long_for_the_display_gets_the_short_prompt(
    pad_link: tuple[ReviewPadLink, VirtualReviewPad, Recorder],
) -> None:
    link, pad, recorder = pad_link
    await link.case_ended(notice("4" * 60))
    assert pad.shown_text == SHORT_PROMPT
    pad.press(Rating.BASIC)
    await until(lambda: recorder.records)
    assert recorder.records[0].case_number == "4" * 60  # type: ignore[attr-defined]


async def test_a_case_that_ends_while_the_pad_is_away_is_rated_when_it_is_back() -> None:
    bridge, simulated = simulated_bridge(config(DeviceKind.REVIEW_PAD))
    pad = simulated.devices["keys0"]
    assert isinstance(pad, VirtualReviewPad)
    simulated.backend.unplug(pad)
    link = ReviewPadLink(bridge, "keys0", lambda: NOW)
    await link.case_ended(notice())  # cannot prompt: logged, the case still awaits
    assert link.binder.awaiting == notice()
    simulated.backend.plug(pad)
    recorder = Recorder()
    task = asyncio.create_task(link.run(recorder))
    try:
        await until(lambda: bridge.poll()[0].state is PeripheralState.OK)
        pad.press(Rating.SATISFIED)
        await until(lambda: recorder.records, timeout_s=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert recorder.records[0].case_number == notice().case_number  # type: ignore[attr-defined]


async def test_a_case_notice_over_mqtt_and_a_key_press_reach_the_uplink_as_a_review(
    broker: BrokerSettings, device_prefix: str
) -> None:
    device_id = f"{device_prefix}-pad"
    cfg = AgentConfig(device_id=device_id, kind=DeviceKind.REVIEW_PAD, peripherals="simulated")
    bridge, simulated = simulated_bridge(cfg)
    pad = simulated.devices["keys0"]
    assert isinstance(pad, VirtualReviewPad)
    monitor = PeripheralMonitor(bridge, lambda: datetime.now(UTC))
    agent = Agent(
        AgentIdentity(device_id, DeviceKind.REVIEW_PAD),
        mqtt.BrokerAddress(broker.host, broker.port),
        SystemHealth(monitor.statuses),
        MemorySessionCounter(1),
        timing=AgentTiming(heartbeat_interval_s=0.5, keepalive_s=5),
        peripherals=monitor,
        review_pad=ReviewPadLink(bridge, "keys0", lambda: datetime.now(UTC)),
    )
    address = mqtt.BrokerAddress(broker.host, broker.port)
    reviews: list[Review] = []
    stop = asyncio.Event()
    async with mqtt.connect(address, mqtt.SessionOptions(client_id=f"cp-{device_id}")) as cp:
        await cp.subscribe(wire.uplink(device_id, Channel.REVIEW), qos=1)

        async def receive() -> None:
            async for incoming in cp.messages():
                reviews.extend(
                    r.payload
                    for r in decode_records(Channel.REVIEW, incoming.payload)
                    if isinstance(r.payload, Review)
                )

        receiving = asyncio.create_task(receive())
        running = asyncio.create_task(agent.run(stop))
        try:
            await asyncio.wait_for(agent.connected.wait(), WAIT_S)
            topic = wire.downlink(device_id, Channel.CASE)
            await cp.publish(mqtt.Outgoing(topic, encode(notice()), qos=1))
            await until(lambda: "44011720261123000001" in pad.shown_text)
            pad.press(Rating.VERY_SATISFIED)
            await until(lambda: reviews)
        finally:
            stop.set()
            await asyncio.wait_for(running, WAIT_S)
            receiving.cancel()
            await asyncio.gather(receiving, return_exceptions=True)
            agent.close()
    [review] = reviews
    assert (review.case_number, review.rating, review.staff_id) == (
        "44011720261123000001",
        Rating.VERY_SATISFIED,
        "A017",
    )
    assert review.seq >= 1


def test_an_agent_without_peripherals_never_loads_pyusb(tmp_path: Path) -> None:
    # pyusb and the drivers cost memory (bench/agent_memory.py); only an agent that drives
    # peripherals may pay for them.
    path = tmp_path / "agent.toml"
    path.write_text(f'device_id = "dev-1"\nkind = "kiosk"\nstate_dir = "{tmp_path / "s"}"\n')
    code = (
        "import sys\nfrom pathlib import Path\nfrom edge.agent.startup import build_agent\n"
        f"build_agent(Path({str(path)!r})).close()\n"
        "print(sorted(m for m in sys.modules if m == 'usb' or m.startswith('firmware_bridge.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['firmware_bridge.errors', 'firmware_bridge.usb_ids']"
