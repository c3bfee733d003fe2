"""A virtual ESC/POS receipt printer: reads the byte stream as a printer does, prints to a list.

It answers ``DLE EOT n`` at once wherever a command may start, even between lines of a page, as
real-time commands are (ESC/POS Command Reference, "Real-time commands"); records each page's text
with the cut as the separator; uses up a roll of a set number of lines; and has the controls a
test or the demo needs to put it in every state a clerk meets: paper out, cover open, cutter jam.
"""

from __future__ import annotations

import threading

from firmware_bridge.codecs.escpos import TEXT_ENCODING
from firmware_bridge.codecs.escpos_stream import Command, CommandReader, Op

from .device import TRANSFER_BULK, StallRequest, VirtualDevice, VirtualEndpoint, VirtualInterface

PRINTER_ENDPOINT_OUT = 0x01
PRINTER_ENDPOINT_IN = 0x82
USB_CLASS_PRINTER = 0x07
PRINTER_SUBCLASS = 0x01
PRINTER_PROTOCOL_BIDIRECTIONAL = 0x02
_FIXED_BITS = 0b0001_0010  # bits 1 and 4 of every status answer are on


class VirtualReceiptPrinter(VirtualDevice):
    """An 80 mm thermal receipt printer on USB printer class, bidirectional (status readable)."""

    # usblp binds a printer-class device at plug-in; the driver takes the interface from it.
    kernel_driver_interfaces = frozenset({0})

    vendor_id = 0x1209  # pid.codes test vendor; see firmware_bridge.drivers.printer
    product_id = 0x7E03
    bcd_device = 0x0102
    manufacturer = "termfleet"
    product = "virtual receipt printer"
    interfaces = (
        VirtualInterface(
            number=0,
            interface_class=USB_CLASS_PRINTER,
            subclass=PRINTER_SUBCLASS,
            protocol=PRINTER_PROTOCOL_BIDIRECTIONAL,
            endpoints=(
                VirtualEndpoint(PRINTER_ENDPOINT_OUT, TRANSFER_BULK),
                VirtualEndpoint(PRINTER_ENDPOINT_IN, TRANSFER_BULK),
            ),
        ),
    )

    def __init__(
        self,
        *,
        roll_lines: int | None = None,
        near_end_lines: int = 20,
        serial: str = "SIM0001",
        seed: int = 0,
    ) -> None:
        """A roll of ``roll_lines`` (None: endless), near its end at ``near_end_lines`` left."""
        super().__init__(serial=serial, seed=seed)
        self.roll_lines = roll_lines
        self.near_end_lines = near_end_lines
        self.lines_left = roll_lines
        self.pages: list[str] = []
        """Each cut page's text, its lines joined with newlines."""
        self.lost_lines = 0
        """Lines sent while the printer could not print (a real one would hold them)."""
        self.chinese_mode = True  # as the Chinese models it imitates leave the factory
        self._state = threading.RLock()
        self._reader = CommandReader()
        self._line = bytearray()
        self._page: list[str] = []
        self._out_forced = self._near_end_forced = False
        self._cover_open = self._cutter_jammed = self._overheated = False

    # --- controls for tests and the demo ------------------------------------------------

    def paper_out(self) -> None:
        with self._state:
            self._out_forced = True

    def paper_near_end(self) -> None:
        with self._state:
            self._near_end_forced = True

    def refill(self) -> None:
        """A fresh roll: paper out and near end cleared."""
        with self._state:
            self._out_forced = self._near_end_forced = False
            self.lines_left = self.roll_lines

    def open_cover(self) -> None:
        with self._state:
            self._cover_open = True

    def close_cover(self) -> None:
        with self._state:
            self._cover_open = False

    def cutter_jam(self) -> None:
        with self._state:
            self._cutter_jammed = True

    def clear_cutter(self) -> None:
        with self._state:
            self._cutter_jammed = False

    def overheat(self) -> None:
        """The head is too hot: printing pauses until ``cool_down`` (an auto-recoverable error)."""
        with self._state:
            self._overheated = True

    def cool_down(self) -> None:
        with self._state:
            self._overheated = False

    # --- state -----------------------------------------------------------------------------

    @property
    def out_of_paper(self) -> bool:
        return self._out_forced or self.lines_left == 0

    @property
    def near_end(self) -> bool:
        if self._near_end_forced or self.out_of_paper:
            return True  # the near-end sensor sees no paper either
        return self.lines_left is not None and self.lines_left <= self.near_end_lines

    @property
    def can_print(self) -> bool:
        return not (
            self.out_of_paper or self._cover_open or self._cutter_jammed or self._overheated
        )

    def status_byte(self, query: int) -> int | None:
        """The answer to ``DLE EOT query``; None for a query this printer does not know."""
        with self._state:
            error = self._cutter_jammed or self._overheated
            flags = {
                1: {0x08: not self.can_print},
                2: {0x04: self._cover_open, 0x20: self.out_of_paper, 0x40: error},
                3: {0x08: self._cutter_jammed, 0x40: self._overheated},
                4: {0x0C: self.near_end, 0x60: self.out_of_paper},
            }.get(query)
        if flags is None:
            return None
        return _FIXED_BITS | sum(bits for bits, on in flags.items() if on)

    # --- the USB side ------------------------------------------------------------------------

    def handle_out(self, endpoint: int, data: bytes) -> None:
        if endpoint != PRINTER_ENDPOINT_OUT:
            raise StallRequest
        with self._state:
            for command in self._reader.feed(data):
                self._execute(command)

    def reset(self) -> None:
        with self._state:
            self._reader.clear()
            self._line.clear()

    def _execute(self, command: Command) -> None:
        op, data = command.op, command.data
        if op is Op.STATUS_QUERY:
            answer = self.status_byte(data[0])
            if answer is not None:
                self.send_in(PRINTER_ENDPOINT_IN, bytes([answer]))
        elif op is Op.TEXT:
            self._line += data
        elif op is Op.NEWLINE:
            self._print_line()
        elif op is Op.FEED:
            self._flush_line()  # ESC d prints what is buffered, then feeds
            self._feed(data[0])
        elif op is Op.CUT:
            self._flush_line()
            self._cut()
        elif op is Op.INITIALIZE:
            self._line.clear()  # ESC @ clears the print buffer
        elif op in {Op.CHINESE_ON, Op.CHINESE_OFF}:
            self.chinese_mode = op is Op.CHINESE_ON

    def _cut(self) -> None:
        if not self.can_print:
            return  # a jammed cutter, or no paper to cut
        self.pages.append("\n".join(self._page))
        self._page = []

    def _flush_line(self) -> None:
        if self._line:
            self._print_line()

    def _print_line(self) -> None:
        encoding = TEXT_ENCODING if self.chinese_mode else "cp437"
        text = bytes(self._line).decode(encoding, errors="replace")
        self._line.clear()
        if not self.can_print:
            self.lost_lines += 1
            return
        self._page.append(text)
        self._feed(1)

    def _feed(self, lines: int) -> None:
        if self.can_print and self.lines_left is not None:
            self.lines_left = max(0, self.lines_left - lines)
