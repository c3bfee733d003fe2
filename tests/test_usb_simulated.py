"""The simulated USB bus through pyusb, and the transport's translation of USB errors.

Layer 2: fake transport. pyusb itself enumerates, parses descriptors and does the transfers;
only the bus is virtual. The errors are libusb's errno values, so the same translation runs on
real hardware.
"""

from __future__ import annotations

import errno
import threading

import pytest
import usb.core
import usb.util
from hypothesis import given
from hypothesis import strategies as st

from firmware_bridge.errors import (
    AccessError,
    NoAnswerError,
    PeripheralError,
    PeripheralGoneError,
    StalledError,
)
from firmware_bridge.simulated import (
    Fault,
    Setup,
    SimulatedBackend,
    VirtualDevice,
    VirtualEndpoint,
    VirtualInterface,
)
from firmware_bridge.simulated.device import TRANSFER_BULK, TRANSFER_INTERRUPT, StallRequest
from firmware_bridge.transport import UsbTransport, find_devices, usb_errors
from firmware_bridge.usb_ids import UsbId

ECHO_ID = UsbId(0x1209, 0x7E00)
IN, OUT = 0x81, 0x01


class Echo(VirtualDevice):
    """Answers each OUT packet with the bytes reversed; a vendor request reads a counter."""

    product_id = ECHO_ID.product_id
    product = "echo"
    bcd_device = 0x0213
    interfaces = (
        VirtualInterface(
            0,
            0xFF,
            endpoints=(VirtualEndpoint(IN, TRANSFER_BULK), VirtualEndpoint(OUT, TRANSFER_BULK)),
        ),
        VirtualInterface(1, 0x03, endpoints=(VirtualEndpoint(0x82, TRANSFER_INTERRUPT, 8, 10),)),
    )

    def __init__(self) -> None:
        super().__init__(serial="E-1")
        self.controls: list[tuple[Setup, bytes]] = []

    def handle_out(self, endpoint: int, data: bytes) -> None:
        assert endpoint == OUT
        if data == b"stall":
            raise StallRequest
        self.send_in(IN, data[::-1])

    def handle_control_in(self, setup: Setup) -> bytes:
        if setup.request != 0x42:
            raise StallRequest
        return bytes(range(setup.length))

    def handle_control_out(self, setup: Setup, data: bytes) -> None:
        self.controls.append((setup, data))


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest.fixture
def bus(echo: Echo) -> SimulatedBackend:
    return SimulatedBackend([echo])


def opened(bus: SimulatedBackend) -> UsbTransport:
    return UsbTransport.open(find_devices(bus, [ECHO_ID])[0])


def test_pyusb_enumerates_and_parses_the_virtual_descriptors(bus: SimulatedBackend) -> None:
    [device] = find_devices(bus, [ECHO_ID])
    assert (device.idVendor, device.idProduct, device.bcdDevice) == (0x1209, 0x7E00, 0x0213)
    config = device[0]
    interfaces = list(config)
    assert [i.bInterfaceNumber for i in interfaces] == [0, 1]
    assert [e.bEndpointAddress for e in interfaces[0]] == [IN, OUT]
    interrupt = interfaces[1][0]
    assert (interrupt.bmAttributes, interrupt.wMaxPacketSize, interrupt.bInterval) == (3, 8, 10)
    assert (device.manufacturer, device.product, device.serial_number) == (
        "termfleet",
        "echo",
        "E-1",
    )


def test_find_devices_matches_only_the_ids_asked_for(bus: SimulatedBackend) -> None:
    assert find_devices(bus, [UsbId(0x1209, 0x7E01)]) == []
    assert len(find_devices(bus, [UsbId(0x1209, 0x7E01), ECHO_ID])) == 1


def test_transport_round_trip_and_device_info(bus: SimulatedBackend) -> None:
    transport = opened(bus)
    transport.write(OUT, b"hello")
    assert transport.read(IN, 64) == b"olleh"
    info = transport.info()
    assert (info.usb_id, info.model, info.serial, info.firmware) == (
        ECHO_ID,
        "termfleet echo",
        "E-1",
        "2.13",
    )


def test_control_transfers_reach_the_device(bus: SimulatedBackend, echo: Echo) -> None:
    transport = opened(bus)
    assert transport.control_in(0xC0, 0x42, 0, 0, 4) == bytes([0, 1, 2, 3])
    transport.control_out(0x40, 0x43, 7, 1, b"xy")
    assert echo.controls == [(Setup(0x40, 0x43, 7, 1, 2), b"xy")]
    with pytest.raises(StalledError):
        transport.control_in(0xC0, 0x44, 0, 0, 4)


def test_a_read_with_nothing_queued_times_out(bus: SimulatedBackend) -> None:
    with pytest.raises(NoAnswerError) as raised:
        opened(bus).read(IN, 64, timeout_ms=20)
    assert raised.value.reason == "no_answer"


def test_a_waiting_read_gets_data_queued_while_it_waits(bus: SimulatedBackend, echo: Echo) -> None:
    transport = opened(bus)
    timer = threading.Timer(0.05, echo.send_in, (IN, b"late"))
    timer.start()
    try:
        assert transport.read(IN, 64, timeout_ms=5000) == b"late"
    finally:
        timer.cancel()


@pytest.mark.parametrize(
    ("fault", "error", "reason"),
    [(Fault.TIMEOUT, NoAnswerError, "no_answer"), (Fault.STALL, StalledError, "stalled")],
)
def test_injected_faults_spoil_exactly_the_transfers_asked_for(
    bus: SimulatedBackend,
    echo: Echo,
    fault: Fault,
    error: type[PeripheralError],
    reason: str,
) -> None:
    transport = opened(bus)
    echo.inject(fault, times=2)
    for _ in range(2):
        with pytest.raises(error) as raised:
            transport.write(OUT, b"ab")
        assert raised.value.reason == reason
    transport.write(OUT, b"ab")
    assert transport.read(IN, 64) == b"ba"


def test_garbage_replaces_what_the_device_sends(bus: SimulatedBackend, echo: Echo) -> None:
    transport = opened(bus)
    transport.write(OUT, b"0123456789" * 6)
    echo.inject(Fault.GARBAGE, times=1)
    garbled = transport.read(IN, 64)
    assert garbled != b"0123456789"[::-1] * 6
    assert 1 <= len(garbled) <= 64
    transport.write(OUT, b"ok")
    assert transport.read(IN, 64) == b"ko"


def test_a_stall_from_the_device_handler(bus: SimulatedBackend) -> None:
    with pytest.raises(StalledError):
        opened(bus).write(OUT, b"stall")


def test_a_packet_larger_than_the_read_is_an_error(bus: SimulatedBackend) -> None:
    transport = opened(bus)
    transport.write(OUT, b"0123456789")
    with pytest.raises(PeripheralError) as raised:
        transport.read(IN, 4)
    assert raised.value.reason == "usb_error"


def test_unplug_makes_every_transfer_gone_and_a_replug_is_a_new_device(
    bus: SimulatedBackend, echo: Echo
) -> None:
    transport = opened(bus)
    bus.unplug(echo)
    assert find_devices(bus, [ECHO_ID]) == []
    for transfer in (
        lambda: transport.write(OUT, b"x"),
        lambda: transport.read(IN, 8),
        lambda: transport.control_in(0xC0, 0x42, 0, 0, 1),
    ):
        with pytest.raises(PeripheralGoneError) as raised:
            transfer()
        assert raised.value.reason == "unplugged"
    transport.close()  # closing what is gone never raises
    bus.plug(echo)
    with pytest.raises(PeripheralGoneError):
        transport.write(OUT, b"x")  # the old handle stays stale, as with libusb
    again = opened(bus)
    again.write(OUT, b"back")
    assert again.read(IN, 8) == b"kcab"


def test_unplug_during_a_waiting_read_ends_it_as_gone(bus: SimulatedBackend, echo: Echo) -> None:
    transport = opened(bus)

    def unplug_and_wake() -> None:
        bus.unplug(echo)
        echo.send_in(IN, b"too late")

    timer = threading.Timer(0.05, unplug_and_wake)
    timer.start()
    try:
        with pytest.raises(PeripheralGoneError):
            transport.read(IN, 64, timeout_ms=5000)
    finally:
        timer.cancel()


def test_reenumerate_leaves_old_handles_stale(bus: SimulatedBackend, echo: Echo) -> None:
    transport = opened(bus)
    echo.reenumerate()
    with pytest.raises(PeripheralGoneError):
        transport.write(OUT, b"x")
    assert len(find_devices(bus, [ECHO_ID])) == 1


def test_open_without_claiming_still_answers_get_status(bus: SimulatedBackend) -> None:
    transport = UsbTransport.open(find_devices(bus, [ECHO_ID])[0], claim=False)
    assert transport.control_in(0x80, 0x00, 0, 0, 2) == b"\x00\x00"


@pytest.mark.parametrize(
    ("code", "error", "reason"),
    [
        (errno.ENODEV, PeripheralGoneError, "unplugged"),
        (errno.ENOENT, PeripheralGoneError, "unplugged"),
        (errno.EPIPE, StalledError, "stalled"),
        (errno.ETIMEDOUT, NoAnswerError, "no_answer"),
        (errno.EACCES, AccessError, "no_access"),
        (errno.EBUSY, AccessError, "no_access"),
        (errno.EIO, PeripheralError, "usb_error"),
    ],
)
def test_libusb_errors_become_ours_with_a_reason(
    code: int, error: type[PeripheralError], reason: str
) -> None:
    with pytest.raises(error) as raised, usb_errors("reading the thing"):
        raise usb.core.USBError("libusb says no", None, code)
    assert type(raised.value) is error
    assert raised.value.reason == reason
    assert str(raised.value).startswith("reading the thing: ")


def test_access_errors_point_at_the_udev_rules() -> None:
    with pytest.raises(AccessError, match=r"udev rules \(docs/peripherals.md\)"), usb_errors("x"):
        raise usb.core.USBError("Access denied", None, errno.EACCES)


def test_a_libusb_timeout_error_is_no_answer() -> None:
    with pytest.raises(NoAnswerError), usb_errors("x"):
        raise usb.core.USBTimeoutError("Operation timed out", None, None)


@pytest.mark.parametrize("text", ["1a86:7584", "1A86:7584", " 0416:5011 "])
def test_usb_ids_parse_as_lsusb_prints_them(text: str) -> None:
    usb_id = UsbId.parse(text)
    assert str(usb_id) == text.strip().lower()


@pytest.mark.parametrize("text", ["", "1a86", "1a86:75840", "1a86-7584", "zzzz:0001", "1a86:"])
def test_malformed_usb_ids_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="vendor:product in hex"):
        UsbId.parse(text)


@given(st.text(max_size=12))
def test_any_text_parses_to_an_id_or_a_clear_error(text: str) -> None:
    try:
        usb_id = UsbId.parse(text)
    except ValueError as exc:
        message = str(exc)
    else:
        message = ""
        assert UsbId.parse(str(usb_id)) == usb_id
    assert not message or "vendor:product in hex" in message


def test_ids_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        UsbId(0x10000, 1)


class BoundToKernel(Echo):
    kernel_driver_interfaces = frozenset({0})


def test_a_claimed_interface_is_taken_from_its_kernel_driver_and_given_back() -> None:
    device = BoundToKernel()
    bus = SimulatedBackend([device])
    transport = UsbTransport.open(find_devices(bus, [ECHO_ID])[0])
    assert device.kernel_bound == set(), "detached while we hold it"
    transport.write(OUT, b"ab")
    assert transport.read(IN, 8) == b"ba"
    transport.close()
    assert device.kernel_bound == {0}, "the kernel driver has it back"


def test_opening_without_claiming_leaves_the_kernel_driver_alone() -> None:
    device = BoundToKernel()
    bus = SimulatedBackend([device])
    transport = UsbTransport.open(find_devices(bus, [ECHO_ID])[0], claim=False)
    assert device.kernel_bound == {0}
    transport.close()
    assert device.kernel_bound == {0}


def test_a_device_unplugged_while_held_comes_back_bound_to_its_kernel_driver() -> None:
    device = BoundToKernel()
    bus = SimulatedBackend([device])
    transport = UsbTransport.open(find_devices(bus, [ECHO_ID])[0])
    bus.unplug(device)
    transport.close()  # cannot give it back: it is gone; never raises
    bus.plug(device)
    assert device.kernel_bound == {0}
