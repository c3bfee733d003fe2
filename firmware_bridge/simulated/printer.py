"""A virtual ESC/POS receipt printer: reads the byte stream as a printer does, prints to a list.

It answers ``DLE EOT n`` at once wherever a command may start, even between lines of a page, as
real-time commands are (ESC/POS Command Reference, "Real-time commands"); records each page's text
with the cut as the separator; uses up a roll of a set number of lines; and has the controls a
test or the demo needs to put it in every state a clerk meets: paper out, cover open, cutter jam.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge.codecs.escpos import DLE, EOT, ESC, FS, GS, LF, TEXT_ENCODING

from .device import TRANSFER_BULK, StallRequest, VirtualDevice, VirtualEndpoint, VirtualInterface

PRINTER_ENDPOINT_OUT = 0x01
PRINTER_ENDPOINT_IN = 0x82
USB_CLASS_PRINTER = 0x07
PRINTER_SUBCLASS = 0x01
PRINTER_PROTOCOL_BIDIRECTIONAL = 0x02
_ENQ = 0x05
_FIXED_BITS = 0b0001_0010  # bits 1 and 4 of every status answer are on


class Op(enum.Enum):
    """What one command of the stream does, as far as the virtual printer cares."""

    TEXT = "text"
    NEWLINE = "newline"
    FEED = "feed"  # ESC d n: print the buffer and feed n lines
    CUT = "cut"
    INITIALIZE = "initialize"
    CHINESE_ON = "chinese_on"
    CHINESE_OFF = "chinese_off"
    STATUS_QUERY = "status_query"
    OTHER = "other"  # styles, barcodes, images: skipped whole


@dataclass(frozen=True)
class Command:
    op: Op
    data: bytes = b""
    """The text of TEXT, else the command's argument bytes."""


# Argument bytes after the two-byte command, for commands of a fixed length.
_FIXED_ARGS: dict[tuple[int, int], int] = {
    **{(ESC, code): 0 for code in b"@2iLSm<"},
    **{(ESC, code): 1 for code in b"!-3?EGJMRTUVadrt{ =%"},
    **{(ESC, code): 2 for code in b"$\\Bc"},  # ESC c 3 n, ESC c 4 n, ESC c 5 n
    (ESC, ord("p")): 3,
    (ESC, ord("W")): 8,
    **{(GS, code): 1 for code in b"!BHIfhwabr"},
    **{(GS, code): 2 for code in b"$LPW\\"},
    **{(FS, code): 0 for code in b"&."},
    **{(FS, code): 1 for code in b"!-CW"},
    **{(FS, code): 2 for code in b"Sp"},
    (DLE, _ENQ): 1,
}
_CUT_WITH_FEED = {65, 66, 97, 98, 103, 104}  # GS V m n: these m take a feed amount n


def _little(low: int, high: int) -> int:
    return low + 256 * high


def _bit_image_args(args: bytes) -> int | None:
    # ESC * m nL nH d1…dk: 8-dot modes (m 0, 1) send one byte a column, 24-dot modes three.
    if len(args) < 3:  # noqa: PLR2004 - m, nL, nH
        return None
    return 3 + _little(args[1], args[2]) * (1 if args[0] in {0, 1} else 3)


def _function_args(args: bytes) -> int | None:
    # GS ( fn pL pH d1…dk: QR codes, NV graphics and the like, all length-prefixed.
    if len(args) < 3:  # noqa: PLR2004 - fn, pL, pH
        return None
    return 3 + _little(args[1], args[2])


def _raster_args(args: bytes) -> int | None:
    # GS v 0 m xL xH yL yH d1…dk: k = (xL + xH·256) · (yL + yH·256).
    if len(args) < 6:  # noqa: PLR2004 - 0, m, xL, xH, yL, yH
        return None
    return 6 + _little(args[2], args[3]) * _little(args[4], args[5])


def _barcode_args(args: bytes) -> int | None:
    # GS k m: m 0-6 is NUL-terminated data, m 65-73 is n then n bytes.
    if not args:
        return None
    if args[0] <= 6:  # noqa: PLR2004 - the last NUL-terminated barcode system
        end = args.find(0, 1)
        return None if end < 0 else end + 1
    return None if len(args) < 2 else 2 + args[1]  # noqa: PLR2004 - m, n


def _status_args(args: bytes) -> int | None:
    # DLE EOT n, and DLE EOT 7 a / DLE EOT 8 a (ink and ASB queries of some models).
    if not args:
        return None
    return 2 if args[0] in {7, 8} else 1


def _cut_args(args: bytes) -> int | None:
    if not args:
        return None
    return 2 if args[0] in _CUT_WITH_FEED else 1


_VARIABLE_ARGS: dict[tuple[int, int], Callable[[bytes], int | None]] = {
    (ESC, ord("*")): _bit_image_args,
    (GS, ord("(")): _function_args,
    (GS, ord("v")): _raster_args,
    (GS, ord("k")): _barcode_args,
    (GS, ord("V")): _cut_args,
    (DLE, EOT): _status_args,
}
_LONGEST_HEADER = 6
_OPS: dict[tuple[int, int], Op] = {
    (ESC, ord("@")): Op.INITIALIZE,
    (ESC, ord("d")): Op.FEED,
    (ESC, ord("i")): Op.CUT,
    (ESC, ord("m")): Op.CUT,
    (GS, ord("V")): Op.CUT,
    (FS, ord("&")): Op.CHINESE_ON,
    (FS, ord(".")): Op.CHINESE_OFF,
    (DLE, EOT): Op.STATUS_QUERY,
}


def _command_at(buffer: bytearray, start: int) -> tuple[Command, int] | None:
    """The command starting at ``start`` and where the next one starts; None until it is whole."""
    first = buffer[start]
    if first >= 0x20:  # noqa: PLR2004 - below is C0, the commands
        end = start
        while end < len(buffer) and buffer[end] >= 0x20:  # noqa: PLR2004
            end += 1
        return Command(Op.TEXT, bytes(buffer[start:end])), end
    if first == LF:
        return Command(Op.NEWLINE), start + 1
    if first not in {ESC, GS, FS, DLE}:
        return Command(Op.OTHER, bytes([first])), start + 1  # CR, HT, CAN …: nothing printed
    return _prefixed_command_at(buffer, start)


def _prefixed_command_at(buffer: bytearray, start: int) -> tuple[Command, int] | None:
    """An ESC, GS, FS or DLE command with its arguments, or None until they have all arrived."""
    first = buffer[start]
    if start + 1 >= len(buffer):
        return None
    key = (first, buffer[start + 1])
    if key in _FIXED_ARGS:
        length: int | None = _FIXED_ARGS[key]
    elif key in _VARIABLE_ARGS:
        header = bytes(buffer[start + 2 : start + 2 + _LONGEST_HEADER])
        if key == (GS, ord("k")):
            header = bytes(buffer[start + 2 :])  # runs to its NUL
        length = _VARIABLE_ARGS[key](header)
    else:
        # An unknown command: skip its prefix and code (a lone DLE is no command at all).
        return Command(Op.OTHER, bytes([first])), start + (1 if first == DLE else 2)
    if length is None or start + 2 + length > len(buffer):
        return None
    args = bytes(buffer[start + 2 : start + 2 + length])
    return Command(_OPS.get(key, Op.OTHER), args), start + 2 + length


class CommandReader:
    """Splits a byte stream into commands across writes: an incomplete command waits for more."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[Command]:
        self._pending += data
        commands: list[Command] = []
        start = 0
        while start < len(self._pending):
            found = _command_at(self._pending, start)
            if found is None:
                break
            command, start = found
            commands.append(command)
        del self._pending[:start]
        return commands

    def clear(self) -> None:
        self._pending.clear()


class VirtualReceiptPrinter(VirtualDevice):
    """An 80 mm thermal receipt printer on USB printer class, bidirectional (status readable)."""

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
