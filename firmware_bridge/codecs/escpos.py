"""ESC/POS receipt printers: the real-time status (``DLE EOT n``) and the test page's bytes.

Reference: Epson's *ESC/POS Command Reference*, "DLE EOT n — Transmit real-time status" and the
cutting, print-position and Kanji/Chinese command pages. Chinese ESC/POS printers (佳博 Gprinter,
芯烨 Xprinter, 新北洋 SNBC …) answer the same four status bytes; their manuals repeat the tables.
Text is GB18030 (Chinese models print GB2312/GBK/GB18030 in Chinese mode, ``FS &``).
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from edge.protocol import PeripheralState
from firmware_bridge.errors import FrameError

ESC = 0x1B
GS = 0x1D
FS = 0x1C
DLE = 0x10
EOT = 0x04
LF = 0x0A

INITIALIZE = bytes([ESC, 0x40])
"""ESC @: clears the print buffer and restores the default modes."""
CHINESE_MODE_ON = bytes([FS, 0x26])
"""FS &: bytes >= 0x80 are Chinese (GB18030) characters, not code-page symbols."""
CHINESE_MODE_OFF = bytes([FS, 0x2E])
PARTIAL_CUT_AFTER_FEED = bytes([GS, 0x56, 66, 0])
"""GS V 66 0: feed to the cutter, then a partial cut (one point left uncut, the roll holds)."""
TEXT_ENCODING = "gb18030"

# Every answer byte has bits 1 and 4 on and bits 0 and 7 off ("Not used. Fixed to On/Off").
_FIXED_MASK = 0b1001_0011
_FIXED_VALUE = 0b0001_0010


class StatusQuery(enum.IntEnum):
    """The ``n`` of ``DLE EOT n``: which status byte the printer sends back."""

    PRINTER = 1
    OFFLINE_CAUSE = 2
    ERROR_CAUSE = 3
    ROLL_PAPER = 4


def status_request(query: StatusQuery) -> bytes:
    """``DLE EOT n``: processed at once, even with the print buffer full or the printer offline."""
    return bytes([DLE, EOT, query])


def check_answer(query: StatusQuery, data: bytes) -> int:
    """The one status byte answering ``query``; FrameError unless one byte with its fixed bits."""
    if len(data) != 1:
        msg = f"DLE EOT {int(query)} answer is {len(data)} bytes, expected 1: {data[:16].hex()}"
        raise FrameError(msg)
    value = data[0]
    if value & _FIXED_MASK != _FIXED_VALUE:
        msg = f"DLE EOT {int(query)} answer {value:#04x} breaks the fixed bits (0, 1, 4, 7)"
        raise FrameError(msg)
    return value


def _bit(value: int, bit: int) -> bool:
    return bool(value >> bit & 1)


@dataclass(frozen=True)
class PrinterStatus:
    """What the four ``DLE EOT`` answers say; bits not listed are model-specific and ignored."""

    # n=1, printer status
    drawer_pin3_high: bool = False  # bit 2: the cash-drawer sensor, unused on our terminals
    offline: bool = False  # bit 3
    waiting_for_recovery: bool = False  # bit 5: waiting for online recovery after an error
    feed_button_pressed: bool = False  # bit 6
    # n=2, offline cause
    cover_open: bool = False  # bit 2
    feeding_by_button: bool = False  # bit 3
    stopped_by_paper_end: bool = False  # bit 5: printing stopped, paper end (ESC c 4 sensors)
    error_occurred: bool = False  # bit 6: any error; n=3 says which
    # n=3, error cause (bit 2 differs by model: mechanical error, black-mark error, undefined)
    cutter_error: bool = False  # bit 3: autocutter jammed; DLE ENQ recovers once cleared
    unrecoverable_error: bool = False  # bit 5: head, circuit or power fault
    auto_recoverable_error: bool = False  # bit 6: e.g. head overheated, resumes when cool
    # n=4, roll paper sensors (two bits each; either set counts, as some models set only one)
    paper_near_end: bool = False  # bits 2-3
    paper_out: bool = False  # bits 5-6

    @classmethod
    def from_answers(cls, printer: int, offline: int, error: int, paper: int) -> PrinterStatus:
        """The status from the four answer bytes, already checked with ``check_answer``."""
        return cls(
            drawer_pin3_high=_bit(printer, 2),
            offline=_bit(printer, 3),
            waiting_for_recovery=_bit(printer, 5),
            feed_button_pressed=_bit(printer, 6),
            cover_open=_bit(offline, 2),
            feeding_by_button=_bit(offline, 3),
            stopped_by_paper_end=_bit(offline, 5),
            error_occurred=_bit(offline, 6),
            cutter_error=_bit(error, 3),
            unrecoverable_error=_bit(error, 5),
            auto_recoverable_error=_bit(error, 6),
            paper_near_end=bool(paper & 0b0000_1100),
            paper_out=bool(paper & 0b0110_0000),
        )


def decode_status(answers: bytes) -> PrinterStatus:
    """The answers to ``DLE EOT 1``..``4`` in order → PrinterStatus; else FrameError."""
    if len(answers) != len(StatusQuery):
        msg = f"expected {len(StatusQuery)} status bytes, got {len(answers)}"
        raise FrameError(msg)
    printer, offline, error, paper = (
        check_answer(query, answers[i : i + 1]) for i, query in enumerate(StatusQuery)
    )
    return PrinterStatus.from_answers(printer, offline, error, paper)


@dataclass(frozen=True)
class HealthRule:
    reason: str
    state: PeripheralState
    applies: Callable[[PrinterStatus], bool]


HEALTH_RULES: tuple[HealthRule, ...] = (
    # Faults first, the most specific cause first: an empty roll is why a clerk opens the cover.
    HealthRule("paper_out", PeripheralState.FAULT, lambda s: s.paper_out or s.stopped_by_paper_end),
    HealthRule("cover_open", PeripheralState.FAULT, lambda s: s.cover_open),
    HealthRule("cutter_error", PeripheralState.FAULT, lambda s: s.cutter_error),
    HealthRule("error", PeripheralState.FAULT, lambda s: s.unrecoverable_error),
    # Before the bare error bit of n=2: an auto-recoverable error sets it too.
    HealthRule(
        "auto_recoverable_error", PeripheralState.DEGRADED, lambda s: s.auto_recoverable_error
    ),
    HealthRule("error", PeripheralState.FAULT, lambda s: s.error_occurred),
    HealthRule("paper_near_end", PeripheralState.DEGRADED, lambda s: s.paper_near_end),
    # Feeding with the button takes the printer offline for a moment; someone is at it.
    HealthRule(
        "offline", PeripheralState.DEGRADED, lambda s: s.offline and not s.feeding_by_button
    ),
)
"""The mapping to the heartbeat's state, in priority order: the first rule that applies wins."""


def health(status: PrinterStatus) -> tuple[PeripheralState, str]:
    """The state and reason of a status: the first of ``HEALTH_RULES`` that applies, else ok."""
    for rule in HEALTH_RULES:
        if rule.applies(status):
            return rule.state, rule.reason
    return PeripheralState.OK, ""


class UnprintableTextError(ValueError):
    """Text that cannot go to the printer as text: control characters or unencodable ones."""


def encode_text(text: str) -> bytes:
    """One line of text as GB18030 bytes; UnprintableTextError names what cannot be printed."""
    for position, char in enumerate(text):
        # A control character is a command to the printer (ESC, DLE EOT …), never text.
        if unicodedata.category(char) in {"Cc", "Cs"}:
            msg = f"cannot print {char!r} at position {position} of {text!r}: not text"
            raise UnprintableTextError(msg)
    try:
        return text.encode(TEXT_ENCODING)
    except UnicodeEncodeError as exc:
        msg = f"cannot print {text!r}: {exc.reason} in {TEXT_ENCODING}"
        raise UnprintableTextError(msg) from None


CHINESE_SAMPLE = "中文打印测试 政务服务终端打印机工作正常"
"""The test page's Chinese line: a wrong code page or mode prints it as garbage at once."""
TEST_PAGE_FEED_LINES = 3


@dataclass(frozen=True)
class SelfTestPage:
    """A commissioning test page (打印测试页): who printed it, when, on what."""

    title: str
    name: str
    printed_at: datetime
    model: str = ""
    firmware: str = ""
    lines: tuple[str, ...] = ()

    def text_lines(self) -> tuple[str, ...]:
        """The lines the page prints, in order, as a reader of the paper sees them."""
        return (
            self.title,
            self.name,
            f"时间 Time: {self.printed_at:%Y-%m-%d %H:%M:%S}",
            f"型号 Model: {self.model or '-'}",
            f"固件 Firmware: {self.firmware or '-'}",
            *self.lines,
            CHINESE_SAMPLE,
        )


def _align(mode: int) -> bytes:
    return bytes([ESC, 0x61, mode])  # ESC a n: 0 left, 1 centre


def _character_size(size: int) -> bytes:
    return bytes([GS, 0x21, size])  # GS ! n: high nibble width, low nibble height multiplier


def feed_lines(count: int) -> bytes:
    """ESC d n: print the buffer and feed ``count`` lines (0-255)."""
    return bytes([ESC, 0x64, count])


def encode_test_page(page: SelfTestPage) -> bytes:
    """The page as ESC/POS bytes: init, Chinese mode, centred title, details, feed, partial cut."""
    title, name, *body = (encode_text(line) + bytes([LF]) for line in page.text_lines())
    return b"".join(
        (
            INITIALIZE,
            CHINESE_MODE_ON,
            _align(1),
            _character_size(0x11),
            title,
            _character_size(0x00),
            name,
            _align(0),
            *body,
            feed_lines(TEST_PAGE_FEED_LINES),
            PARTIAL_CUT_AFTER_FEED,
        )
    )
