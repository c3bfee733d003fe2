"""Reading an ESC/POS byte stream as a printer does: where each command ends, and what it does.

A stream arrives in arbitrary pieces, so ``CommandReader`` keeps an incomplete command until the
rest of it comes. Commands of a fixed length are looked up; length-prefixed ones (bit images,
``GS (`` functions, raster images, barcodes) are measured from their headers, so their data,
which may hold LF or ESC bytes, is skipped whole (ESC/POS Command Reference). Pure: bytes in,
commands out; no byte sequence makes it raise.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from firmware_bridge.codecs.escpos import DLE, EOT, ESC, FS, GS, LF

_ENQ = 0x05


class Op(enum.Enum):
    """What one command of the stream does, as far as the printed text is concerned."""

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
