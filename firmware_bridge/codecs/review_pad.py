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

The report descriptor (GET_DESCRIPTOR 0x22 on the interface) announces these ids and sizes; the
driver refuses a pad whose descriptor does not (``check_layout``). Real pads are configured by
USB id; ``PAD_USB_ID`` is the simulated pad's, see its docstring.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from edge.protocol import Rating
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

# HID 1.11 §7.2: class requests on the interface, and the report type in wValue's high byte.
GET_REPORT_REQUEST_TYPE = 0xA1
SET_REPORT_REQUEST_TYPE = 0x21
GET_REPORT = 0x01
SET_REPORT = 0x09
# HID 1.11 §7.1: GET_DESCRIPTOR of a class descriptor is a standard request to the interface.
GET_DESCRIPTOR_REQUEST_TYPE = 0x81
GET_DESCRIPTOR = 0x06
DESCRIPTOR_HID = 0x21
DESCRIPTOR_REPORT = 0x22


class ReportType(enum.IntEnum):
    """HID 1.11 §7.2.1: the report type in the high byte of GET_REPORT's wValue."""

    INPUT = 1
    OUTPUT = 2
    FEATURE = 3


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


# --- the HID class and report descriptors (HID 1.11 §6.2) -------------------------------------


@dataclass(frozen=True)
class HidDescriptor:
    """The HID class descriptor in the interface's extra bytes; it sizes the report descriptor."""

    bcd_hid: int
    country_code: int
    report_descriptor_length: int


@dataclass(frozen=True)
class ReportLayout:
    """What a report descriptor announces: its application's usage page and each report's size."""

    usage_page: int
    bits: Mapping[tuple[ReportType, int], int]
    """(type, report id) → data bits after the id byte."""


def encode_hid_descriptor(report_descriptor_length: int) -> bytes:
    """HID 1.11 §6.2.1: HID 1.11, no country, one report descriptor of the given length."""
    head = [9, DESCRIPTOR_HID, 0x11, 0x01, 0, 1, DESCRIPTOR_REPORT]
    return bytes(head) + report_descriptor_length.to_bytes(2, "little")


def decode_hid_descriptor(extra: bytes) -> HidDescriptor:
    """The HID descriptor among an interface's class descriptors; FrameError if there is none."""
    pos = 0
    while pos < len(extra):
        length = extra[pos]
        if length < 2 or pos + length > len(extra):  # noqa: PLR2004 - bLength, bDescriptorType
            msg = f"interface descriptors break at byte {pos} (bLength {length})"
            raise FrameError(msg)
        if extra[pos + 1] == DESCRIPTOR_HID:
            return _hid_descriptor(extra[pos : pos + length])
        pos += length
    msg = "the interface has no HID descriptor"
    raise FrameError(msg, reason="unsupported")


def _hid_descriptor(data: bytes) -> HidDescriptor:
    count = data[5] if len(data) >= 9 else 0  # noqa: PLR2004 - the descriptor's fixed part
    if count < 1 or len(data) < 6 + 3 * count:
        msg = f"HID descriptor of {len(data)} bytes lists {count} descriptors"
        raise FrameError(msg)
    for entry in range(6, 6 + 3 * count, 3):
        if data[entry] == DESCRIPTOR_REPORT:
            length = int.from_bytes(data[entry + 1 : entry + 3], "little")
            return HidDescriptor(int.from_bytes(data[2:4], "little"), data[4], length)
    msg = "HID descriptor lists no report descriptor"
    raise FrameError(msg, reason="unsupported")


@dataclass
class _LayoutBuilder:
    globals: dict[int, int] = field(default_factory=dict)
    """Global item tag → its current value (HID 1.11 §6.2.2.7: globals carry on to later items)."""
    pushed: list[dict[int, int]] = field(default_factory=list)
    depth: int = 0
    usage_page: int | None = None
    bits: dict[tuple[ReportType, int], int] = field(default_factory=dict)


# HID 1.11 §6.2.2: item types, and the tags of the items a report's size depends on.
_MAIN, _GLOBAL = 0, 1
_MAIN_REPORTS = {0x8: ReportType.INPUT, 0x9: ReportType.OUTPUT, 0xB: ReportType.FEATURE}
_COLLECTION, _END_COLLECTION = 0xA, 0xC
_USAGE_PAGE, _REPORT_SIZE, _REPORT_ID, _REPORT_COUNT, _PUSH, _POP = 0x0, 0x7, 0x8, 0x9, 0xA, 0xB
_LONG_ITEM = 0xFE
_DATA_SIZES = (0, 1, 2, 4)


def decode_report_descriptor(data: bytes) -> ReportLayout:
    """Walk a report descriptor's items and add up each report's bits; FrameError if malformed."""
    state = _LayoutBuilder()
    for item_type, tag, value in _items(data):
        if item_type == _MAIN:
            _main_item(state, tag)
        elif item_type == _GLOBAL:
            _global_item(state, tag, value)
    if state.depth or state.usage_page is None:
        msg = "report descriptor has no complete application collection"
        raise FrameError(msg)
    return ReportLayout(state.usage_page, state.bits)


def _items(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(type, tag, unsigned data) of each short item; long items (§6.2.2.3) are skipped."""
    pos = 0
    while pos < len(data):
        prefix = data[pos]
        if prefix == _LONG_ITEM:
            pos += 3 + (data[pos + 1] if pos + 1 < len(data) else 0)
        else:
            end = pos + 1 + _DATA_SIZES[prefix & 3]
            if prefix >> 2 & 3 == 3:  # noqa: PLR2004 - type 3 is reserved but for long items
                msg = f"report descriptor item {prefix:#04x} has the reserved type"
                raise FrameError(msg)
            if end <= len(data):
                yield prefix >> 2 & 3, prefix >> 4, int.from_bytes(data[pos + 1 : end], "little")
            pos = end
        if pos > len(data):
            msg = "report descriptor ends inside an item"
            raise FrameError(msg)


def _main_item(state: _LayoutBuilder, tag: int) -> None:
    if tag in _MAIN_REPORTS:
        key = (_MAIN_REPORTS[tag], state.globals.get(_REPORT_ID, 0))
        size = state.globals.get(_REPORT_SIZE, 0) * state.globals.get(_REPORT_COUNT, 0)
        state.bits[key] = state.bits.get(key, 0) + size
    elif tag == _COLLECTION:
        if state.depth == 0 and state.usage_page is None:
            state.usage_page = state.globals.get(_USAGE_PAGE, 0)
        state.depth += 1
    elif tag == _END_COLLECTION and state.depth > 0:
        state.depth -= 1
    else:
        msg = f"report descriptor has a stray main item (tag {tag:#x})"
        raise FrameError(msg)


def _global_item(state: _LayoutBuilder, tag: int, value: int) -> None:
    if tag == _PUSH:
        state.pushed.append(dict(state.globals))
    elif tag == _POP:
        if not state.pushed:
            msg = "report descriptor pops more than it pushed"
            raise FrameError(msg)
        state.globals = state.pushed.pop()
    elif tag == _REPORT_ID and value not in range(1, 256):
        # HID 1.11 §6.2.2.7: id 0 is reserved, and an id is the report's first byte.
        msg = f"report descriptor names report id {value}"
        raise FrameError(msg)
    else:
        state.globals[tag] = value
