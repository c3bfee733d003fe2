"""The contract every driver keeps, run on each over its virtual device (STYLE.md, layer 2).

discover, status with the device's own model and firmware, unplug and replug through the
bridge, and for peripherals that speak a protocol: timeout, stall and garbage each give their
own error and the same driver recovers once the fault clears. Nothing else may escape.
"""

from __future__ import annotations

import pytest

from edge.protocol import PeripheralState
from firmware_bridge.bridge import UNPLUGGED, PeripheralBridge, PeripheralSlot
from firmware_bridge.catalog import CAMERA, CITIZEN_CARD_READER, DOCUMENT_CAMERA, DRIVERS
from firmware_bridge.driver import PeripheralDriver
from firmware_bridge.errors import (
    FrameError,
    NoAnswerError,
    PeripheralError,
    PeripheralGoneError,
    StalledError,
)
from firmware_bridge.simulated import Fault, SimulatedBackend, VirtualDevice
from firmware_bridge.simulated.presence import VirtualPresenceDevice
from firmware_bridge.transport import UsbTransport, find_devices
from tests.support import id_reader, printer, review_pad
from tests.support.peripherals import ContractCase


def _presence_case(case_id: str, spec: object) -> ContractCase:
    assert spec in DRIVERS.values()
    usb_id = spec.default_ids[0]  # type: ignore[attr-defined]
    return ContractCase(
        id=case_id,
        spec=spec,  # type: ignore[arg-type]
        make_device=lambda: VirtualPresenceDevice(usb_id.vendor_id, usb_id.product_id),
        speaks=False,
    )


CASES = [
    review_pad.CONTRACT_CASE,
    id_reader.CONTRACT_CASE,
    printer.CONTRACT_CASE,
    _presence_case("document_camera", DOCUMENT_CAMERA),
    _presence_case("citizen_card_reader", CITIZEN_CARD_READER),
    _presence_case("camera", CAMERA),
]
SPEAKING = [case for case in CASES if case.speaks]


def open_driver(case: ContractCase, bus: SimulatedBackend) -> PeripheralDriver:
    [device] = find_devices(bus, case.spec.default_ids)
    transport = UsbTransport.open(device, case.spec.interface, claim=case.spec.claim)
    return case.spec.open(transport, "p0")


def working(case: ContractCase) -> tuple[VirtualDevice, SimulatedBackend]:
    device = case.make_device()
    return device, SimulatedBackend([device])


def test_every_driver_in_the_catalog_has_a_contract_case() -> None:
    assert {case.spec.kind for case in CASES} == set(DRIVERS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_discover_and_status(case: ContractCase) -> None:
    device, bus = working(case)
    driver = open_driver(case, bus)
    status = driver.status()
    assert (status.name, status.kind, status.state) == ("p0", case.spec.kind, PeripheralState.OK)
    manufacturer, product, _ = device.strings()
    assert status.model == f"{manufacturer} {product}"
    release = device.device_release()
    assert status.firmware == f"{release >> 8:x}.{release & 0xFF:02x}"
    driver.self_test()
    driver.close()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_unplug_is_gone_and_replug_reopens(case: ContractCase) -> None:
    device, bus = working(case)
    driver = open_driver(case, bus)
    bus.unplug(device)
    with pytest.raises(PeripheralGoneError):
        driver.status()
    with pytest.raises(PeripheralGoneError):
        driver.self_test()
    driver.close()  # never raises, gone or not
    bus.plug(device)
    assert open_driver(case, bus).status().state is PeripheralState.OK


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hot_plug_through_the_bridge(case: ContractCase) -> None:
    device, bus = working(case)
    bridge = PeripheralBridge(bus, [PeripheralSlot("p0", case.spec)])
    assert [s.state for s in bridge.poll()] == [PeripheralState.OK]
    bus.unplug(device)
    [absent] = bridge.poll()
    assert (absent.state, absent.reason) == (PeripheralState.ABSENT, UNPLUGGED)
    bus.plug(device)
    assert [s.state for s in bridge.poll()] == [PeripheralState.OK]


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault.TIMEOUT, NoAnswerError), (Fault.STALL, StalledError)],
    ids=["timeout", "stall"],
)
@pytest.mark.parametrize("case", SPEAKING, ids=lambda c: c.id)
def test_timeout_and_stall_are_their_own_errors_and_the_driver_recovers(
    case: ContractCase, fault: Fault, error: type[PeripheralError]
) -> None:
    device, bus = working(case)
    driver = open_driver(case, bus)
    device.inject(fault)
    with pytest.raises(error):
        driver.status()
    device.clear_faults()
    assert driver.status().state is PeripheralState.OK


@pytest.mark.parametrize("case", SPEAKING, ids=lambda c: c.id)
def test_garbage_is_a_frame_error_and_the_driver_resynchronises(case: ContractCase) -> None:
    device, bus = working(case)
    driver = open_driver(case, bus)
    for _ in range(5):  # several draws of garbage; none may pass as a status
        device.inject(Fault.GARBAGE)
        with pytest.raises((FrameError, NoAnswerError)):
            driver.status()
    device.clear_faults()
    assert driver.status().state is PeripheralState.OK


@pytest.mark.parametrize("case", SPEAKING, ids=lambda c: c.id)
def test_faults_in_the_bridge_are_fault_statuses_with_their_reason(case: ContractCase) -> None:
    device, bus = working(case)
    bridge = PeripheralBridge(bus, [PeripheralSlot("p0", case.spec)])
    bridge.poll()
    device.inject(Fault.TIMEOUT)
    [status] = bridge.poll()
    assert (status.state, status.reason) == (PeripheralState.FAULT, "no_answer")
    device.clear_faults()
    assert [s.state for s in bridge.poll()] == [PeripheralState.OK]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_a_device_the_agent_may_not_open_is_a_no_access_fault(case: ContractCase) -> None:
    device, bus = working(case)
    device.access_denied = True
    bridge = PeripheralBridge(bus, [PeripheralSlot("p0", case.spec)])
    [status] = bridge.poll()
    assert (status.state, status.reason) == (PeripheralState.FAULT, "no_access")
    device.access_denied = False
    assert [s.state for s in bridge.poll()] == [PeripheralState.OK]
