"""USB HID 1.11 on the wire: class requests, the HID descriptor, and report descriptors.

``decode_report_descriptor`` walks any report descriptor's items and sums each report's size, so
a driver can check that a device announces the reports it expects before it reads one. Pure:
bytes in, values out; every decoder raises ``FrameError`` and nothing else. Sections cited are
those of "Device Class Definition for Human Interface Devices (HID)", version 1.11.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from firmware_bridge.errors import FrameError

HID_INTERFACE_CLASS = 0x03  # bInterfaceClass of every HID interface (§4.1)

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
