"""The receipt printer's driver on a simulated bus, and the virtual printer it talks to."""

from __future__ import annotations

import pytest

from edge.protocol import PeripheralState
from firmware_bridge.codecs.escpos import (
    CHINESE_SAMPLE,
    PARTIAL_CUT_AFTER_FEED,
    PrinterStatus,
    SelfTestPage,
)
from firmware_bridge.drivers.printer import (
    PRINT_CHUNK_BYTES,
    SELF_TEST_TITLE,
    ReceiptPrinterDriver,
)
from firmware_bridge.errors import (
    FrameError,
    NoAnswerError,
    PeripheralError,
    PeripheralGoneError,
    StalledError,
)
from firmware_bridge.simulated import Fault, SimulatedBackend, VirtualEndpoint, VirtualInterface
from firmware_bridge.simulated.device import TRANSFER_BULK
from firmware_bridge.simulated.printer import PRINTER_ENDPOINT_IN, VirtualReceiptPrinter
from firmware_bridge.transport import UsbTransport, find_devices
from tests.support.printer import (
    CONTRACT_CASE,
    IDLE,
    NOW,
    RecordingPrinter,
    printer_on_bus,
)

FAULT = PeripheralState.FAULT
DEGRADED = PeripheralState.DEGRADED
OK = PeripheralState.OK


# --- the virtual printer's reading of the stream -----------------------------------------


def test_a_status_query_between_text_is_answered_at_once_and_the_line_goes_on() -> None:
    printer = VirtualReceiptPrinter()
    printer.handle_out(0x01, b"abc\x10\x04\x04")
    assert printer.read_in(PRINTER_ENDPOINT_IN, 0) == bytes([IDLE])
    printer.handle_out(0x01, b"def\n\x1dV\x01")
    assert printer.pages == ["abcdef"]


def test_paper_runs_near_end_then_out_and_lines_after_that_are_lost() -> None:
    printer = VirtualReceiptPrinter(roll_lines=10, near_end_lines=3)
    printer.handle_out(0x01, b"x\n" * 7)
    assert printer.status_byte(4) == IDLE | 0x0C  # near end
    printer.handle_out(0x01, b"y\n" * 5 + b"\x1dV\x01")
    assert printer.status_byte(4) == IDLE | 0x0C | 0x60  # and out
    assert printer.lost_lines == 2
    assert printer.pages == []  # the cutter does not cut without paper
    printer.refill()
    printer.handle_out(0x01, b"z\n\x1dV\x01")
    assert printer.pages == ["\n".join(["x"] * 7 + ["y"] * 3 + ["z"])]


# --- the driver over the simulated bus ---------------------------------------------------


@pytest.mark.parametrize(
    ("make_it", "state", "reason"),
    [
        (lambda _: None, OK, ""),
        (VirtualReceiptPrinter.paper_out, FAULT, "paper_out"),
        (VirtualReceiptPrinter.paper_near_end, DEGRADED, "paper_near_end"),
        (VirtualReceiptPrinter.open_cover, FAULT, "cover_open"),
        (VirtualReceiptPrinter.cutter_jam, FAULT, "cutter_error"),
        (VirtualReceiptPrinter.overheat, DEGRADED, "auto_recoverable_error"),
    ],
)
def test_each_state_of_the_printer_is_its_status(
    make_it: object, state: PeripheralState, reason: str
) -> None:
    bus = printer_on_bus()
    make_it(bus.device)  # type: ignore[operator]
    status = bus.driver.status()
    assert (status.state, status.reason) == (state, reason)
    assert status.model == "termfleet virtual receipt printer"
    assert status.firmware == "1.02"
    assert status.name == "printer0"


def test_a_printer_back_in_order_is_ok_again() -> None:
    bus = printer_on_bus()
    for spoil, mend in [
        (VirtualReceiptPrinter.paper_out, VirtualReceiptPrinter.refill),
        (VirtualReceiptPrinter.open_cover, VirtualReceiptPrinter.close_cover),
        (VirtualReceiptPrinter.cutter_jam, VirtualReceiptPrinter.clear_cutter),
        (VirtualReceiptPrinter.overheat, VirtualReceiptPrinter.cool_down),
    ]:
        spoil(bus.device)
        assert bus.driver.status().state is not OK
        mend(bus.device)
        assert bus.driver.status().state is OK


def test_the_test_page_is_printed_and_cut() -> None:
    bus = printer_on_bus()
    after = bus.driver.print_test_page("政务服务中心 1号窗口", ["终端 T-001"], NOW)
    assert after == PrinterStatus()
    expected = SelfTestPage(
        title="政务服务中心 1号窗口",
        name="printer0",
        printed_at=NOW,
        model="termfleet virtual receipt printer",
        firmware="1.02",
        lines=("终端 T-001",),
    )
    assert bus.device.pages == ["\n".join(expected.text_lines())]


def test_self_test_prints_a_page() -> None:
    bus = printer_on_bus()
    bus.driver.self_test()
    (printed,) = bus.device.pages
    assert printed.startswith(SELF_TEST_TITLE + "\nprinter0\n时间 Time: ")
    assert printed.endswith(CHINESE_SAMPLE)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (VirtualReceiptPrinter.paper_out, "paper_out"),
        (VirtualReceiptPrinter.open_cover, "cover_open"),
    ],
)
def test_no_page_is_sent_to_a_printer_in_a_fault(spoil: object, reason: str) -> None:
    device = RecordingPrinter()
    bus = printer_on_bus(device)
    spoil(device)  # type: ignore[operator]
    with pytest.raises(PeripheralError) as refused:
        bus.driver.print_test_page("t", now=NOW)
    assert refused.value.reason == reason
    with pytest.raises(PeripheralError) as failed:
        bus.driver.self_test()
    assert failed.value.reason == reason
    assert all(len(write) == 3 and write[:2] == b"\x10\x04" for write in device.writes)
    assert device.pages == []


def test_a_page_that_runs_out_of_paper_fails_after_printing() -> None:
    bus = printer_on_bus(VirtualReceiptPrinter(roll_lines=4, near_end_lines=1))
    with pytest.raises(PeripheralError) as failed:
        bus.driver.print_test_page("t", now=NOW)
    assert failed.value.reason == "paper_out"
    assert bus.device.lost_lines > 0


def test_a_printer_near_end_still_prints() -> None:
    bus = printer_on_bus()
    bus.device.paper_near_end()
    assert bus.driver.print_test_page("t", now=NOW).paper_near_end
    assert len(bus.device.pages) == 1


def test_unprintable_text_is_refused_before_anything_is_sent() -> None:
    device = RecordingPrinter()
    bus = printer_on_bus(device)
    with pytest.raises(PeripheralError) as refused:
        bus.driver.print_test_page("bad\x1b", now=NOW)
    assert refused.value.reason == "unprintable_text"
    assert device.writes == []


def test_raw_data_goes_in_bounded_chunks_and_arrives_whole() -> None:
    device = RecordingPrinter()
    bus = printer_on_bus(device)
    receipt = "".join(f"第{n}行 line {n}\n" for n in range(1000)).encode("gb18030")
    bus.driver.print_raw(receipt + PARTIAL_CUT_AFTER_FEED)
    assert len(device.writes) > 1
    assert max(len(w) for w in device.writes) <= PRINT_CHUNK_BYTES
    assert device.pages == [receipt.decode("gb18030").removesuffix("\n")]


def test_a_stale_answer_waiting_on_the_in_endpoint_is_not_taken_for_a_new_one() -> None:
    bus = printer_on_bus()
    # Answers of an earlier, abandoned query of a printer that was then out of paper.
    bus.device.send_in(PRINTER_ENDPOINT_IN, bytes([0x7E]))
    bus.device.send_in(PRINTER_ENDPOINT_IN, bytes([0x1A]))
    assert bus.driver.status().state is OK
    assert bus.device.pending_in(PRINTER_ENDPOINT_IN) == 0


def test_a_printer_that_never_stops_sending_is_garbled_until_it_does() -> None:
    bus = printer_on_bus()
    for _ in range(20):
        bus.device.send_in(PRINTER_ENDPOINT_IN, bytes([IDLE]))
    with pytest.raises(FrameError, match="nobody asked for"):
        bus.driver.status()
    assert bus.driver.status().state is OK


def test_a_printer_without_a_status_channel_is_refused_at_open() -> None:
    class OneWayPrinter(VirtualReceiptPrinter):
        interfaces = (
            VirtualInterface(0, 0x07, 0x01, 0x01, (VirtualEndpoint(0x01, TRANSFER_BULK),)),
        )

    backend = SimulatedBackend([OneWayPrinter()])
    (device,) = find_devices(backend, CONTRACT_CASE.spec.default_ids)
    with pytest.raises(PeripheralError) as refused:
        ReceiptPrinterDriver(UsbTransport.open(device), "printer0")
    assert refused.value.reason == "no_status_channel"


# --- the contract faults ------------------------------------------------------------------


def test_contract_case_enumerates_with_the_first_default_id() -> None:
    device = CONTRACT_CASE.make_device()
    assert device.ids() == (
        CONTRACT_CASE.spec.default_ids[0].vendor_id,
        CONTRACT_CASE.spec.default_ids[0].product_id,
    )


def test_unplugged_is_gone_and_a_replug_is_ok_again() -> None:
    bus = printer_on_bus()
    bus.backend.unplug(bus.device)
    with pytest.raises(PeripheralGoneError):
        bus.driver.status()
    bus.backend.plug(bus.device)
    bus.reopen()
    assert bus.driver.status().state is OK


def test_no_answer_then_ok_again_on_the_same_driver() -> None:
    bus = printer_on_bus()
    bus.device.inject(Fault.TIMEOUT)
    with pytest.raises(NoAnswerError):
        bus.driver.status()
    with pytest.raises(NoAnswerError):
        bus.driver.self_test()
    bus.device.clear_faults()
    assert bus.driver.status().state is OK


@pytest.mark.parametrize("seed", range(8))
def test_garbage_is_a_frame_error_then_ok_again_on_the_same_driver(seed: int) -> None:
    bus = printer_on_bus(VirtualReceiptPrinter(seed=seed))
    bus.device.inject(Fault.GARBAGE)
    with pytest.raises((FrameError, NoAnswerError)):
        bus.driver.status()
    with pytest.raises(PeripheralError):
        bus.driver.self_test()
    bus.device.clear_faults()
    assert bus.driver.status().state is OK
    assert bus.device.pages == []


def test_a_stall_is_a_stalled_error() -> None:
    bus = printer_on_bus()
    bus.device.inject(Fault.STALL)
    with pytest.raises(StalledError):
        bus.driver.status()
    bus.device.clear_faults()
    assert bus.driver.status().state is OK
