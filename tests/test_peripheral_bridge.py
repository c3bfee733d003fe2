"""The bridge: slots filled by what is on the (simulated) bus, statuses, hot-plug.

Layer 2. Presence-only drivers keep these tests about the bridge itself; every driver's own
behaviour is in tests/test_peripheral_contract.py and its own test file.
"""

from __future__ import annotations

import dataclasses

import pytest

from edge.protocol import PeripheralKind, PeripheralState, PeripheralStatus
from firmware_bridge.bridge import NOT_FOUND, UNPLUGGED, PeripheralBridge, PeripheralSlot
from firmware_bridge.drivers.presence import PresenceDriver, presence_spec
from firmware_bridge.errors import AccessError, NoAnswerError, PeripheralGoneError
from firmware_bridge.simulated import SimulatedBackend
from firmware_bridge.simulated.presence import VirtualPresenceDevice
from firmware_bridge.usb_ids import UsbId

CAMERA_ID = UsbId(0x1209, 0x7E06)
OTHER_ID = UsbId(0x1209, 0x7E07)
CAMERA = presence_spec(PeripheralKind.CAMERA, (CAMERA_ID,))


def camera(serial: str = "C-1", usb_id: UsbId = CAMERA_ID) -> VirtualPresenceDevice:
    return VirtualPresenceDevice(usb_id.vendor_id, usb_id.product_id, serial=serial)


def serial_of(driver: object) -> str:
    assert isinstance(driver, PresenceDriver)
    return driver.info.serial


def states(statuses: tuple[PeripheralStatus, ...]) -> list[tuple[str, str, str]]:
    return [(s.name, s.state.value, s.reason) for s in statuses]


def test_a_present_peripheral_is_ok_with_its_model_and_firmware() -> None:
    bridge = PeripheralBridge(SimulatedBackend([camera()]), [PeripheralSlot("camera0", CAMERA)])
    [status] = bridge.poll()
    assert status == PeripheralStatus(
        name="camera0",
        kind=PeripheralKind.CAMERA,
        state=PeripheralState.OK,
        model="termfleet virtual camera",
        firmware="1.00",
    )


def test_never_seen_is_not_found_and_seen_then_gone_is_unplugged() -> None:
    device = camera()
    bus = SimulatedBackend()
    bridge = PeripheralBridge(bus, [PeripheralSlot("camera0", CAMERA)])
    assert states(bridge.poll()) == [("camera0", "absent", NOT_FOUND)]
    bus.plug(device)
    assert states(bridge.poll()) == [("camera0", "ok", "")]
    bus.unplug(device)
    assert states(bridge.poll()) == [("camera0", "absent", UNPLUGGED)]
    assert states(bridge.poll()) == [("camera0", "absent", UNPLUGGED)]
    bus.plug(device)
    assert states(bridge.poll()) == [("camera0", "ok", "")]


def test_configured_ids_replace_the_drivers_defaults() -> None:
    bus = SimulatedBackend([camera(usb_id=OTHER_ID)])
    default = PeripheralBridge(bus, [PeripheralSlot("camera0", CAMERA)])
    configured = PeripheralBridge(bus, [PeripheralSlot("camera0", CAMERA, (OTHER_ID,))])
    assert states(default.poll()) == [("camera0", "absent", NOT_FOUND)]
    assert states(configured.poll()) == [("camera0", "ok", "")]


def test_two_alike_peripherals_fill_two_slots_and_each_keeps_its_own() -> None:
    first, second = camera("C-1"), camera("C-2")
    bus = SimulatedBackend([first, second])
    bridge = PeripheralBridge(
        bus, [PeripheralSlot("camera0", CAMERA), PeripheralSlot("camera1", CAMERA)]
    )
    assert states(bridge.poll()) == [("camera0", "ok", ""), ("camera1", "ok", "")]
    serials = [bridge.use(n, serial_of) for n in ("camera0", "camera1")]
    assert sorted(serials) == ["C-1", "C-2"]
    bus.unplug(first)
    polled = states(bridge.poll())
    gone = "camera0" if serials[0] == "C-1" else "camera1"
    assert (gone, "absent", UNPLUGGED) in polled
    assert len([s for s in polled if s[1] == "ok"]) == 1


def test_a_driver_that_gets_no_answer_is_a_fault_with_the_reason_and_recovers() -> None:
    answering = [False]

    class Flaky(PresenceDriver):
        def status(self) -> PeripheralStatus:
            if not answering[0]:
                msg = "nobody home"
                raise NoAnswerError(msg)
            return super().status()

    flaky = dataclasses.replace(CAMERA, open=lambda t, n: Flaky(t, n, PeripheralKind.CAMERA))
    bridge = PeripheralBridge(SimulatedBackend([camera()]), [PeripheralSlot("camera0", flaky)])
    assert states(bridge.poll()) == [("camera0", "fault", "no_answer")]
    answering[0] = True
    assert states(bridge.poll()) == [("camera0", "ok", "")]  # the same driver, kept open


def test_a_device_that_cannot_be_opened_is_a_fault_naming_why_not_absent() -> None:
    device = camera()
    device.access_denied = True
    bridge = PeripheralBridge(SimulatedBackend([device]), [PeripheralSlot("camera0", CAMERA)])
    assert states(bridge.poll()) == [("camera0", "fault", "no_access")]
    with pytest.raises(AccessError, match=r"udev rules"):
        bridge.use("camera0", lambda d: d.name)
    device.access_denied = False
    assert states(bridge.poll()) == [("camera0", "ok", "")]


def test_use_runs_work_on_the_driver_and_says_why_it_cannot() -> None:
    device = camera()
    bus = SimulatedBackend()
    bridge = PeripheralBridge(bus, [PeripheralSlot("camera0", CAMERA)])
    with pytest.raises(PeripheralGoneError) as raised:
        bridge.use("camera0", lambda d: d.name)
    assert raised.value.reason == NOT_FOUND
    bus.plug(device)
    assert bridge.use("camera0", lambda d: d.name) == "camera0"  # opened on demand
    bus.unplug(device)
    with pytest.raises(PeripheralGoneError):
        bridge.use("camera0", lambda d: d.status())
    with pytest.raises(PeripheralGoneError) as raised:
        bridge.use("camera0", lambda d: d.name)
    assert raised.value.reason == UNPLUGGED
    with pytest.raises(KeyError, match="no peripheral named 'nope'"):
        bridge.use("nope", lambda d: d.name)


def test_self_test_of_a_present_and_an_absent_peripheral() -> None:
    bridge = PeripheralBridge(
        SimulatedBackend([camera()]),
        [PeripheralSlot("camera0", CAMERA), PeripheralSlot("camera1", CAMERA)],
    )
    bridge.self_test("camera0")
    with pytest.raises(PeripheralGoneError):
        bridge.self_test("camera1")


def test_slot_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        PeripheralBridge(
            SimulatedBackend(), [PeripheralSlot("cam", CAMERA), PeripheralSlot("cam", CAMERA)]
        )


def test_close_releases_every_open_device_and_polls_reopen() -> None:
    bridge = PeripheralBridge(SimulatedBackend([camera()]), [PeripheralSlot("camera0", CAMERA)])
    bridge.poll()
    bridge.close()
    assert states(bridge.poll()) == [("camera0", "ok", "")]
