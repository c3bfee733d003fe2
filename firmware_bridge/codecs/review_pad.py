"""The review pad's (评价器) HID reports: key presses in, display and LEDs out, status as a feature.

The pad is one HID interface (class 3, subclass 0 "no boot", protocol 0) with a vendor usage page
(0xFF00), so no kernel keyboard driver turns its keys into keystrokes. Its interrupt IN endpoint
0x81 carries input reports, its interrupt OUT endpoint 0x01 output reports (HID 1.11 §4.4; the
pad also takes them by SET_REPORT, request 0x09, type 0x21, value 0x0202). Reports are numbered:

=====  =======  =====  ================================================================
id     type     bytes  layout (after the id byte)
=====  =======  =====  ================================================================
1      input    4      key code 1..5, press sequence number (8 bits, wraps), flags (reserved)
2      output   64     LED pattern, text length n ≤ 61, n bytes of GB18030 text, zero padding
3      feature  9      magic 0x52 'R', protocol version 1, firmware major and minor (BCD),
                       stuck-key bitmap (bit k-1 = key k), display bits (0 present, 1 fault),
                       sequence number of the last press, CRC-8 (poly 0x07) of bytes 0..7
=====  =======  =====  ================================================================

Key 1 is the leftmost key, 非常满意 very satisfied; key 5 is 非常不满意 very dissatisfied. The pad
sends one report per key-down and numbers presses, so the host tells a new press from a report it
has seen (serial-number arithmetic, RFC 1982). The status report is read with GET_REPORT (request
0x01, type 0xA1, value 0x0303); its magic and CRC make random bytes fail. GET_REPORT of the output
report (value 0x0202) echoes the last one the pad accepted, which the self-test compares. The
display's font ROM is GB18030 (the national standard character set), two bytes a common 汉字.

The report descriptor (GET_DESCRIPTOR 0x22 on the interface, parsed by ``codecs.hid``) announces
these ids and sizes; the driver refuses a pad whose descriptor does not (``check_layout``). Real
pads are configured by USB id; ``PAD_USB_ID`` is the simulated pad's, see its docstring.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from edge.protocol import Rating
from firmware_bridge.codecs.hid import ReportLayout, ReportType
from firmware_bridge.errors import FrameError
from firmware_bridge.usb_ids import UsbId

PAD_USB_ID = UsbId(0x1209, 0x7E01)
"""pid.codes' open-hardware vendor id with a product id unassigned in its registry: the simulated
pad's id. No review pad model with a documented id was found, so a site's config names its pads'
real ids; this one must not be burnt into hardware that ships."""

ENDPOINT_KEYS = 0x81
ENDPOINT_DISPLAY = 0x01
MAX_PACKET_SIZE = 64

REPORT_ID_KEY = 1
REPORT_ID_DISPLAY = 2
REPORT_ID_STATUS = 3
KEY_REPORT_SIZE = 4
DISPLAY_REPORT_SIZE = 64
STATUS_REPORT_SIZE = 9
DISPLAY_TEXT_MAX_BYTES = DISPLAY_REPORT_SIZE - 3
DISPLAY_ENCODING = "gb18030"
STATUS_MAGIC = 0x52
PROTOCOL_VERSION = 1

KEY_RATINGS: tuple[Rating, ...] = (
    Rating.VERY_SATISFIED,
    Rating.SATISFIED,
    Rating.BASIC,
    Rating.DISSATISFIED,
    Rating.VERY_DISSATISFIED,
)
"""Key code k (1..5) rates ``KEY_RATINGS[k - 1]``."""

# fmt: off
REPORT_DESCRIPTOR = bytes([
    0x06, 0x00, 0xFF,  # Usage Page (Vendor Defined 0xFF00)
    0x09, 0x01,        # Usage (review pad)
    0xA1, 0x01,        # Collection (Application)
    0x15, 0x00,        #   Logical Minimum (0)
    0x26, 0xFF, 0x00,  #   Logical Maximum (255)
    0x75, 0x08,        #   Report Size (8 bits)
    0x85, 0x01,        #   Report ID (1): key event
    0x09, 0x02,        #   Usage (key event)
    0x95, 0x03,        #   Report Count (3)
    0x81, 0x02,        #   Input (Data, Variable, Absolute)
    0x85, 0x02,        #   Report ID (2): display and LEDs
    0x09, 0x03,        #   Usage (display)
    0x95, 0x3F,        #   Report Count (63)
    0x91, 0x02,        #   Output (Data, Variable, Absolute)
    0x85, 0x03,        #   Report ID (3): status
    0x09, 0x04,        #   Usage (status)
    0x95, 0x08,        #   Report Count (8)
    0xB1, 0x02,        #   Feature (Data, Variable, Absolute)
    0xC0,              # End Collection
])
# fmt: on

VENDOR_USAGE_PAGE = 0xFF00
EXPECTED_REPORTS = {
    (ReportType.INPUT, REPORT_ID_KEY): KEY_REPORT_SIZE - 1,
    (ReportType.OUTPUT, REPORT_ID_DISPLAY): DISPLAY_REPORT_SIZE - 1,
    (ReportType.FEATURE, REPORT_ID_STATUS): STATUS_REPORT_SIZE - 1,
}
"""(type, id) → data bytes after the id byte, as the pad's descriptor must announce them."""


class LedPattern(enum.IntEnum):
    OFF = 0
    STEADY = 1
    BLINK = 2
    """"Please rate": the keys' LEDs blink until a key is pressed."""
    CHASE = 3
    """"Thank you": the LEDs light one after the other."""
    ALL = 4
    """Every LED and display segment on: the self-test pattern."""


class DisplayTextError(ValueError):
    """Text the pad cannot show: too long for its display, or not encodable in GB18030."""


@dataclass(frozen=True)
class KeyPress:
    """One press of a rating key, numbered by the pad (``seq`` wraps at 256)."""

    rating: Rating
    seq: int


@dataclass(frozen=True)
class DisplayReport:
    """What the pad shows: its LED pattern and a line of text ("" blanks the display)."""

    leds: LedPattern
    text: str = ""


@dataclass(frozen=True)
class PadStatus:
    """The pad's feature report 3."""

    firmware: str
    stuck_keys: frozenset[Rating]
    display_present: bool
    display_fault: bool
    last_seq: int


def is_newer(seq: int, last_seq: int) -> bool:
    """Whether press ``seq`` came after ``last_seq`` (8-bit serial-number arithmetic, RFC 1982)."""
    return 0 < (seq - last_seq) % 256 < 128  # noqa: PLR2004 - half the 8-bit sequence space


def encode_key_report(press: KeyPress) -> bytes:
    if press.rating not in KEY_RATINGS or press.seq not in range(256):
        msg = f"no key report for {press}"
        raise ValueError(msg)
    return bytes([REPORT_ID_KEY, KEY_RATINGS.index(press.rating) + 1, press.seq, 0])


def decode_key_report(data: bytes) -> KeyPress:
    """Input report 1 → KeyPress; FrameError for anything else."""
    _check_report(data, REPORT_ID_KEY, KEY_REPORT_SIZE, "key")
    key = data[1]
    if not 1 <= key <= len(KEY_RATINGS):
        msg = f"key report names key {key}; the pad has keys 1..{len(KEY_RATINGS)}"
        raise FrameError(msg)
    # data[3] holds flags no firmware sets yet; ignoring them lets a newer pad add some.
    return KeyPress(KEY_RATINGS[key - 1], data[2])


def encode_display_report(report: DisplayReport) -> bytes:
    """Output report 2; DisplayTextError if the text does not fit the display."""
    try:
        text = report.text.encode(DISPLAY_ENCODING)
    except UnicodeEncodeError as exc:
        msg = f"display text {report.text!r} cannot be encoded in GB18030 ({exc.reason})"
        raise DisplayTextError(msg) from None
    if len(text) > DISPLAY_TEXT_MAX_BYTES:
        msg = (
            f"display text {report.text!r} is {len(text)} bytes in GB18030; "
            f"the pad shows at most {DISPLAY_TEXT_MAX_BYTES}"
        )
        raise DisplayTextError(msg)
    body = bytes([REPORT_ID_DISPLAY, report.leds, len(text)]) + text
    return body.ljust(DISPLAY_REPORT_SIZE, b"\0")


def decode_display_report(data: bytes) -> DisplayReport:
    """Output report 2 (as the pad receives or echoes it) → DisplayReport; else FrameError."""
    _check_report(data, REPORT_ID_DISPLAY, DISPLAY_REPORT_SIZE, "display")
    try:
        leds = LedPattern(data[1])
    except ValueError:
        msg = f"display report names LED pattern {data[1]}"
        raise FrameError(msg) from None
    length = data[2]
    if length > DISPLAY_TEXT_MAX_BYTES or any(data[3 + length :]):
        msg = f"display report text length {length} does not match its padding"
        raise FrameError(msg)
    try:
        text = data[3 : 3 + length].decode(DISPLAY_ENCODING)
    except UnicodeDecodeError:
        msg = "display report text is not GB18030"
        raise FrameError(msg) from None
    return DisplayReport(leds, text)


def encode_status(status: PadStatus) -> bytes:
    major, minor = (int(part, 16) for part in status.firmware.split("."))
    stuck = sum(1 << KEY_RATINGS.index(rating) for rating in status.stuck_keys)
    display = int(status.display_present) | int(status.display_fault) << 1
    head = [REPORT_ID_STATUS, STATUS_MAGIC, PROTOCOL_VERSION, major, minor]
    body = bytes([*head, stuck, display, status.last_seq])
    return body + bytes([crc8(body)])


def decode_status(data: bytes) -> PadStatus:
    """Feature report 3 → PadStatus; FrameError for anything else (random bytes fail the CRC)."""
    _check_report(data, REPORT_ID_STATUS, STATUS_REPORT_SIZE, "status")
    if data[1] != STATUS_MAGIC or crc8(data[:-1]) != data[-1]:
        msg = "status report fails its magic or CRC: not from a review pad"
        raise FrameError(msg)
    if data[2] != PROTOCOL_VERSION:
        msg = f"status report of protocol version {data[2]}; this driver speaks {PROTOCOL_VERSION}"
        raise FrameError(msg, reason="unsupported")
    stuck_bits, display_bits = data[5], data[6]
    if stuck_bits >> len(KEY_RATINGS) or display_bits >> 2:
        msg = f"status report sets unknown bits ({stuck_bits:#04x}, {display_bits:#04x})"
        raise FrameError(msg)
    return PadStatus(
        firmware=f"{data[3]:x}.{data[4]:02x}",
        stuck_keys=frozenset(r for i, r in enumerate(KEY_RATINGS) if stuck_bits >> i & 1),
        display_present=bool(display_bits & 1),
        display_fault=bool(display_bits & 2),
        last_seq=data[7],
    )


def check_layout(layout: ReportLayout) -> None:
    """Refuse a pad whose report descriptor does not announce this protocol's reports."""
    if layout.usage_page != VENDOR_USAGE_PAGE:
        page = layout.usage_page
        msg = f"HID usage page {page:#06x} is not the review pad's {VENDOR_USAGE_PAGE:#06x}"
        raise FrameError(msg, reason="unsupported")
    for (kind, report_id), size in EXPECTED_REPORTS.items():
        announced = layout.bits.get((kind, report_id), 0)
        if announced != size * 8:
            msg = (
                f"{kind.name.lower()} report {report_id} is announced with {announced} bits, "
                f"not the {size * 8} of review pad protocol {PROTOCOL_VERSION}"
            )
            raise FrameError(msg, reason="unsupported")


def crc8(data: bytes) -> int:
    """CRC-8 with polynomial 0x07, initial value 0 (CRC-8/SMBUS)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc << 1 ^ 0x07) & 0xFF if crc & 0x80 else crc << 1
    return crc


def _check_report(data: bytes, report_id: int, size: int, what: str) -> None:
    if len(data) != size or data[0] != report_id:
        got = f"{len(data)} bytes starting {data[:1].hex() or '-'}"
        msg = f"{what} report must be {size} bytes starting {report_id:02x}, not {got}"
        raise FrameError(msg)
