"""The ESC/POS receipt printer (小票打印机): status by ``DLE EOT``, the test page, raw receipts.

The printer is a USB printer-class interface (class 7, subclass 1, protocol 2 "bidirectional"):
commands go to its bulk OUT endpoint and status answers come back on its bulk IN endpoint. Which
endpoints those are differs by model (Epson 0x01/0x82, Gprinter 0x03/0x84 …), so they are read
from the interface descriptor. The bytes are ``firmware_bridge.codecs.escpos``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import usb.util

from edge.protocol import PeripheralKind, PeripheralState, PeripheralStatus
from firmware_bridge.codecs.escpos import (
    PrinterStatus,
    SelfTestPage,
    StatusQuery,
    UnprintableTextError,
    check_answer,
    encode_test_page,
    health,
    status_request,
)
from firmware_bridge.driver import DriverSpec, UsbDriver
from firmware_bridge.errors import FrameError, NoAnswerError, PeripheralError
from firmware_bridge.transport import UsbTransport, usb_errors
from firmware_bridge.usb_ids import UsbId

SIMULATED_PRINTER_ID = UsbId(0x1209, 0x7E03)
"""pid.codes' test vendor: the virtual printer of the tests and the demo, never real hardware."""
KNOWN_PRINTER_IDS = (
    UsbId(0x04B8, 0x0202),  # Epson TM-T88IV/TM-T88V/TM-T70 (Epson's own vendor id)
    UsbId(0x04B8, 0x0E15),  # Epson TM-T20II
    UsbId(0x6868, 0x0200),  # 佳博 Gprinter GP-58 series
    UsbId(0x6868, 0x0500),  # 佳博 Gprinter GP-R222C, ZH-380
    UsbId(0x0483, 0x5743),  # 芯烨 Xprinter XP-T58H (STMicro's vendor id, Xprinter's product id)
)
"""Models whose ids we have seen in published descriptors. Any other ESC/POS printer works once
a terminal's config names its id (``lsusb`` shows it); many cheap ones reuse their USB chip
maker's ids, which we would not claim by default."""

STATUS_ANSWER_TIMEOUT_MS = 1000
DRAIN_TIMEOUT_MS = 10
"""How long an idle IN endpoint is read to be sure nothing stale is waiting there."""
MAX_STALE_PACKETS = 16
EMPTY_ANSWERS_ALLOWED = 3
"""Zero-length packets some printers send before the status byte."""
PRINT_CHUNK_BYTES = 4096
PRINT_CHUNK_TIMEOUT_MS = 5000
"""A printer takes data as fast as it prints once its buffer is full; a chunk can take a while."""
SELF_TEST_TITLE = "打印测试 Test page"
_BULK = usb.util.ENDPOINT_TYPE_BULK
_OUT = usb.util.ENDPOINT_OUT
_IN = usb.util.ENDPOINT_IN


class ReceiptPrinterDriver(UsbDriver):
    """One ESC/POS receipt printer; every method raises PeripheralError only."""

    kind = PeripheralKind.RECEIPT_PRINTER

    def __init__(self, transport: UsbTransport, name: str) -> None:
        super().__init__(transport, name)
        self.endpoint_out, self.endpoint_in, self.packet_size = _bulk_endpoints(transport)

    def status(self) -> PeripheralStatus:
        state, reason = health(self.read_status())
        return self.report(state, reason)

    def read_status(self) -> PrinterStatus:
        """The four real-time status bytes, asked one at a time after dropping stale input."""
        self._drain()
        printer, offline, error, paper = (self._ask(query) for query in StatusQuery)
        return PrinterStatus.from_answers(printer, offline, error, paper)

    def ensure_ready(self) -> PrinterStatus:
        """The status, or PeripheralError with the fault's reason (paper_out, cover_open …)."""
        status = self.read_status()
        state, reason = health(status)
        if state is PeripheralState.FAULT:
            msg = f"{self.name} cannot print: {reason}"
            raise PeripheralError(msg, reason=reason)
        return status

    def print_test_page(
        self, title: str, lines: Sequence[str] = (), now: datetime | None = None
    ) -> PrinterStatus:
        """Prints the test page unless the printer is in a fault; the status after printing."""
        page = SelfTestPage(
            title=title,
            name=self.name,
            printed_at=now or datetime.now(UTC).astimezone(),
            model=self.info.model,
            firmware=self.info.firmware,
            lines=tuple(lines),
        )
        try:
            data = encode_test_page(page)
        except UnprintableTextError as exc:
            raise PeripheralError(str(exc), reason="unprintable_text") from None
        self.ensure_ready()
        self.print_raw(data)
        # The roll can end or the cover open while the page prints; that is a failed test too.
        return self.ensure_ready()

    def self_test(self) -> None:
        self.print_test_page(SELF_TEST_TITLE)

    def print_raw(self, data: bytes) -> None:
        """Sends ESC/POS bytes as they are, in bounded chunks; the caller checks status first."""
        for start in range(0, len(data), PRINT_CHUNK_BYTES):
            chunk = data[start : start + PRINT_CHUNK_BYTES]
            self.transport.write(self.endpoint_out, chunk, PRINT_CHUNK_TIMEOUT_MS)

    def _ask(self, query: StatusQuery) -> int:
        self.transport.write(self.endpoint_out, status_request(query))
        for _ in range(EMPTY_ANSWERS_ALLOWED):
            answer = self.transport.read(
                self.endpoint_in, self.packet_size, STATUS_ANSWER_TIMEOUT_MS
            )
            if answer:
                return check_answer(query, answer)
        msg = f"{self.name}: empty packets only in answer to DLE EOT {int(query)}"
        raise NoAnswerError(msg)

    def _drain(self) -> None:
        # An answer we gave up waiting for (or an unasked automatic status) would otherwise be
        # taken for the answer to the next question, shifting every status byte by one.
        for _ in range(MAX_STALE_PACKETS):
            try:
                self.transport.read(self.endpoint_in, self.packet_size, DRAIN_TIMEOUT_MS)
            except NoAnswerError:
                return
        msg = f"{self.name} keeps sending data nobody asked for"
        raise FrameError(msg)


def _bulk_endpoints(transport: UsbTransport) -> tuple[int, int, int]:
    """The claimed interface's bulk OUT and IN endpoint addresses and the IN packet size."""
    with usb_errors("reading the printer's endpoints"):
        configuration = transport.device.get_active_configuration()
        endpoints = list(configuration[(transport.interface, 0)])
    bulk = [e for e in endpoints if usb.util.endpoint_type(e.bmAttributes) == _BULK]
    outs = [e for e in bulk if usb.util.endpoint_direction(e.bEndpointAddress) == _OUT]
    ins = [e for e in bulk if usb.util.endpoint_direction(e.bEndpointAddress) == _IN]
    if not outs or not ins:
        # Protocol 1 (unidirectional) printers take data but can never say they are out of paper.
        msg = f"interface {transport.interface} has no bulk OUT and IN pair to print and ask status"
        raise PeripheralError(msg, reason="no_status_channel")
    return outs[0].bEndpointAddress, ins[0].bEndpointAddress, ins[0].wMaxPacketSize


RECEIPT_PRINTER = DriverSpec(
    kind=PeripheralKind.RECEIPT_PRINTER,
    default_ids=(SIMULATED_PRINTER_ID, *KNOWN_PRINTER_IDS),
    open=ReceiptPrinterDriver,
    interface=0,
)
