"""The review pad (评价器): its HID reports and descriptors, and the driver on a simulated bus."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.protocol import PeripheralKind, PeripheralState, Rating
from firmware_bridge.codecs.hid import (
    SET_REPORT,
    SET_REPORT_REQUEST_TYPE,
    ReportLayout,
    ReportType,
    decode_hid_descriptor,
    decode_report_descriptor,
    encode_hid_descriptor,
)
from firmware_bridge.codecs.review_pad import (
    DISPLAY_TEXT_MAX_BYTES,
    ENDPOINT_KEYS,
    EXPECTED_REPORTS,
    KEY_RATINGS,
    REPORT_DESCRIPTOR,
    DisplayReport,
    DisplayTextError,
    KeyPress,
    LedPattern,
    PadStatus,
    check_layout,
    crc8,
    decode_display_report,
    decode_key_report,
    decode_status,
    encode_display_report,
    encode_key_report,
    encode_status,
    is_newer,
)
from firmware_bridge.drivers.review_pad import REVIEW_PAD, ReviewPadDriver
from firmware_bridge.errors import (
    FrameError,
    NoAnswerError,
    PeripheralError,
    PeripheralGoneError,
    StalledError,
)
from firmware_bridge.simulated import Fault, SimulatedBackend, VirtualInterface
from firmware_bridge.simulated.device import Setup
from firmware_bridge.simulated.review_pad import VirtualReviewPad
from firmware_bridge.transport import UsbTransport, find_devices
from firmware_bridge.usb_ids import UsbId
from tests.support.review_pad import CONTRACT_CASE

# --- input report 1: key presses -------------------------------------------------------------


@pytest.mark.parametrize("rating", KEY_RATINGS)
@pytest.mark.parametrize("seq", [0, 1, 255])
def test_key_reports_round_trip(rating: Rating, seq: int) -> None:
    report = encode_key_report(KeyPress(rating, seq))
    assert report == bytes([1, KEY_RATINGS.index(rating) + 1, seq, 0])
    assert decode_key_report(report) == KeyPress(rating, seq)


def test_key_one_is_very_satisfied_and_key_five_very_dissatisfied() -> None:
    assert decode_key_report(b"\x01\x01\x07\x00").rating is Rating.VERY_SATISFIED
    assert decode_key_report(b"\x01\x05\x07\x00").rating is Rating.VERY_DISSATISFIED


def test_key_report_flags_are_left_to_newer_firmware() -> None:
    assert decode_key_report(b"\x01\x02\x09\xff") == KeyPress(Rating.SATISFIED, 9)


@pytest.mark.parametrize(
    "report",
    [
        b"",
        b"\x01\x01\x01",
        b"\x01\x01\x01\x00\x00",
        b"\x02\x01\x01\x00",
        b"\x01\x00\x01\x00",
        b"\x01\x06\x01\x00",
        b"\x01\xff\x01\x00",
    ],
    ids=["empty", "short", "long", "other-id", "key-0", "key-6", "key-255"],
)
def test_bad_key_reports_are_frame_errors(report: bytes) -> None:
    with pytest.raises(FrameError):
        decode_key_report(report)


@pytest.mark.parametrize("press", [KeyPress(Rating.UNKNOWN, 1), KeyPress(Rating.BASIC, 256)])
def test_no_key_report_for_what_a_pad_cannot_press(press: KeyPress) -> None:
    with pytest.raises(ValueError, match="no key report"):
        encode_key_report(press)


@pytest.mark.parametrize(
    ("seq", "last", "newer"),
    [
        (1, 0, True),
        (0, 0, False),
        (0, 255, True),
        (255, 0, False),
        (127, 0, True),
        (128, 0, False),
        (5, 6, False),
        (10, 200, True),
    ],
)
def test_a_press_is_new_when_its_number_comes_after_the_last(
    seq: int, last: int, *, newer: bool
) -> None:
    assert is_newer(seq, last) is newer


# --- output report 2: LEDs and display -------------------------------------------------------


@given(st.sampled_from(LedPattern), st.text(max_size=70))
def test_display_reports_round_trip_or_refuse_clearly(leds: LedPattern, text: str) -> None:
    try:
        report = encode_display_report(DisplayReport(leds, text))
    except DisplayTextError:
        try:
            size = len(text.encode("gb18030"))
        except UnicodeEncodeError:
            return  # lone surrogates: GB18030 has no code for them
        assert size > DISPLAY_TEXT_MAX_BYTES
        return
    assert len(report) == 64
    assert decode_display_report(report) == DisplayReport(leds, text)


def test_display_text_is_gb18030_of_at_most_61_bytes() -> None:
    assert encode_display_report(DisplayReport(LedPattern.BLINK, "请评价"))[:9] == (
        b"\x02\x02\x06" + "请评价".encode("gb18030")
    )
    encode_display_report(DisplayReport(LedPattern.OFF, "评" * 30))  # 60 bytes
    encode_display_report(DisplayReport(LedPattern.OFF, "x" * 61))
    with pytest.raises(DisplayTextError, match=r"is 62 bytes in GB18030; the pad shows at most 61"):
        encode_display_report(DisplayReport(LedPattern.OFF, "评" * 31))
    with pytest.raises(DisplayTextError, match="cannot be encoded in GB18030"):
        encode_display_report(DisplayReport(LedPattern.OFF, "\ud800"))


def display_report(body: bytes) -> bytes:
    return (b"\x02" + body).ljust(64, b"\0")


@pytest.mark.parametrize(
    "report",
    [
        display_report(b"\x09\x00"),  # no such LED pattern
        display_report(b"\x01\x3e"),  # text longer than the report holds
        display_report(b"\x01\x01AB"),  # a byte after the text
        display_report(b"\x01\x01\x81"),  # half a GB18030 character
        display_report(b"\x01\x00")[:63],
        b"\x03" + display_report(b"")[1:],
    ],
    ids=["led", "length", "padding", "half-character", "short", "other-id"],
)
def test_bad_display_reports_are_frame_errors(report: bytes) -> None:
    with pytest.raises(FrameError):
        decode_display_report(report)


# --- feature report 3: status ----------------------------------------------------------------

statuses = st.builds(
    PadStatus,
    firmware=st.tuples(st.integers(0, 255), st.integers(0, 255)).map(
        lambda v: f"{v[0]:x}.{v[1]:02x}"
    ),
    stuck_keys=st.frozensets(st.sampled_from(KEY_RATINGS)),
    display_present=st.booleans(),
    display_fault=st.booleans(),
    last_seq=st.integers(0, 255),
)


@given(statuses)
def test_status_reports_round_trip(status: PadStatus) -> None:
    assert decode_status(encode_status(status)) == status


def test_crc8_is_crc8_smbus() -> None:
    assert crc8(b"123456789") == 0xF4  # the catalogue's check value


def test_status_report_layout() -> None:
    status = PadStatus("1.02", frozenset({Rating.BASIC}), True, False, 17)  # noqa: FBT003
    report = encode_status(status)
    assert report[:8] == bytes([3, 0x52, 1, 0x01, 0x02, 0b00100, 0b01, 17])
    assert report[8] == crc8(report[:8])


GOOD_STATUS = encode_status(PadStatus("1.02", frozenset(), True, False, 0))  # noqa: FBT003


@pytest.mark.parametrize("position", range(1, 9))
def test_a_changed_status_byte_is_a_frame_error(position: int) -> None:
    spoiled = bytearray(GOOD_STATUS)
    spoiled[position] ^= 0x10
    with pytest.raises(FrameError):
        decode_status(bytes(spoiled))


def with_crc(body: bytes) -> bytes:
    return body + bytes([crc8(body)])


def test_status_of_another_protocol_version_is_unsupported() -> None:
    with pytest.raises(FrameError) as caught:
        decode_status(with_crc(bytes([3, 0x52, 2, 1, 2, 0, 1, 0])))
    assert caught.value.reason == "unsupported"


@pytest.mark.parametrize("bits", [(0x20, 0), (0, 0x04)], ids=["sixth-key", "display-bit-2"])
def test_status_bits_the_protocol_does_not_define_are_frame_errors(
    bits: tuple[int, int],
) -> None:
    with pytest.raises(FrameError, match="unknown bits"):
        decode_status(with_crc(bytes([3, 0x52, 1, 1, 2, *bits, 0])))


# --- descriptors -----------------------------------------------------------------------------


def test_the_report_descriptor_announces_the_protocol() -> None:
    layout = decode_report_descriptor(REPORT_DESCRIPTOR)
    assert layout == ReportLayout(
        0xFF00,
        {
            (ReportType.INPUT, 1): 24,
            (ReportType.OUTPUT, 2): 504,
            (ReportType.FEATURE, 3): 64,
        },
    )
    check_layout(layout)


def test_long_items_are_skipped_and_push_pop_restore_the_globals() -> None:
    long_item = b"\xfe\x02\x10\xaa\xbb"
    pushed = b"\xa4\x75\x10\x95\x01\xb4"  # Push, Report Size 16, Report Count 1, Pop
    descriptor = long_item + REPORT_DESCRIPTOR[:14] + pushed + REPORT_DESCRIPTOR[14:]
    assert decode_report_descriptor(descriptor) == decode_report_descriptor(REPORT_DESCRIPTOR)


@pytest.mark.parametrize(
    "descriptor",
    [
        REPORT_DESCRIPTOR[:-1],  # the collection is never closed
        REPORT_DESCRIPTOR + b"\xc0",  # closed twice
        REPORT_DESCRIPTOR[:2],  # ends inside Usage Page's data
        b"\xb4" + REPORT_DESCRIPTOR,  # Pop with nothing pushed
        b"\x85\x00" + REPORT_DESCRIPTOR,  # report id 0 is reserved
        b"\x0c" + REPORT_DESCRIPTOR,  # an item of the reserved type
        b"\xf0" + REPORT_DESCRIPTOR,  # a main item with an undefined tag
        b"\xfe\x05\x00\x01",  # a long item longer than the descriptor
        b"",
    ],
    ids=[
        "unclosed",
        "closed-twice",
        "truncated",
        "pop",
        "id-0",
        "reserved",
        "tag",
        "long",
        "empty",
    ],
)
def test_malformed_report_descriptors_are_frame_errors(descriptor: bytes) -> None:
    with pytest.raises(FrameError):
        decode_report_descriptor(descriptor)


@pytest.mark.parametrize(
    "layout",
    [
        ReportLayout(0x0001, {key: size * 8 for key, size in EXPECTED_REPORTS.items()}),
        ReportLayout(0xFF00, {(ReportType.INPUT, 1): 24, (ReportType.FEATURE, 3): 64}),
        ReportLayout(
            0xFF00, {**{k: s * 8 for k, s in EXPECTED_REPORTS.items()}, (ReportType.FEATURE, 3): 72}
        ),
    ],
    ids=["generic-desktop-page", "no-output-report", "longer-status"],
)
def test_a_layout_of_another_protocol_is_unsupported(layout: ReportLayout) -> None:
    with pytest.raises(FrameError) as caught:
        check_layout(layout)
    assert caught.value.reason == "unsupported"


def test_the_hid_descriptor_sizes_the_report_descriptor() -> None:
    hid = encode_hid_descriptor(len(REPORT_DESCRIPTOR))
    assert hid == bytes([9, 0x21, 0x11, 0x01, 0, 1, 0x22, len(REPORT_DESCRIPTOR), 0])
    other = bytes([4, 0x24, 0, 0])  # another class-specific descriptor before it
    found = decode_hid_descriptor(other + hid)
    assert (found.bcd_hid, found.report_descriptor_length) == (0x0111, len(REPORT_DESCRIPTOR))


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (b"", "unsupported"),
        (bytes([4, 0x24, 0, 0]), "unsupported"),
        (bytes([0, 0x21]), "garbled"),
        (bytes([9, 0x21, 0x11, 0x01, 0, 0, 0x22, 39, 0]), "garbled"),
        (bytes([9, 0x21, 0x11, 0x01, 0, 1, 0x23, 39, 0]), "unsupported"),
    ],
    ids=["nothing", "no-hid", "zero-length", "no-descriptors", "no-report-descriptor"],
)
def test_interfaces_without_a_usable_hid_descriptor(extra: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as caught:
        decode_hid_descriptor(extra)
    assert caught.value.reason == reason


# --- any bytes from the device: a value or FrameError, nothing else --------------------------

DECODERS: list[Callable[[bytes], object]] = [
    decode_key_report,
    decode_display_report,
    decode_status,
    decode_report_descriptor,
    decode_hid_descriptor,
]


@pytest.mark.parametrize("decoder", DECODERS, ids=lambda d: d.__name__)
@given(data=st.binary(max_size=80))
def test_any_bytes_decode_or_raise_frame_error(
    decoder: Callable[[bytes], object], data: bytes
) -> None:
    with contextlib.suppress(FrameError):
        decoder(data)


@given(
    st.sampled_from(
        [(decode_key_report, 1, 3), (decode_display_report, 2, 63), (decode_status, 3, 8)]
    ),
    st.data(),
)
def test_reports_of_the_right_id_and_size_decode_or_raise_frame_error(
    case: tuple[Callable[[bytes], object], int, int], data: st.DataObject
) -> None:
    decoder, report_id, size = case
    body = data.draw(st.binary(min_size=size, max_size=size))
    with contextlib.suppress(FrameError):
        decoder(bytes([report_id]) + body)


def descriptor_items(descriptor: bytes) -> list[bytes]:
    """The short items of a descriptor, each with its data (HID 1.11 §6.2.2.2)."""
    items, pos = [], 0
    while pos < len(descriptor):
        end = pos + 1 + (0, 1, 2, 4)[descriptor[pos] & 3]
        items.append(descriptor[pos:end])
        pos = end
    return items


def test_descriptor_items_split_the_descriptor() -> None:
    items = descriptor_items(REPORT_DESCRIPTOR)
    assert b"".join(items) == REPORT_DESCRIPTOR
    assert items[:3] == [b"\x06\x00\xff", b"\x09\x01", b"\xa1\x01"]


@given(st.lists(st.sampled_from([*descriptor_items(REPORT_DESCRIPTOR), b"\xa4", b"\xb4"])))
def test_any_sequence_of_items_is_a_layout_or_a_frame_error(items: list[bytes]) -> None:
    try:
        layout = decode_report_descriptor(b"".join(items))
    except FrameError:
        return
    assert all(bits >= 0 for bits in layout.bits.values())
    with contextlib.suppress(FrameError):
        check_layout(layout)
        assert layout.bits == {key: size * 8 for key, size in EXPECTED_REPORTS.items()}


# --- the driver on a simulated bus -----------------------------------------------------------


@dataclass
class Rig:
    pad: VirtualReviewPad
    backend: SimulatedBackend
    driver: ReviewPadDriver


def open_driver(backend: SimulatedBackend, name: str = "pad0") -> ReviewPadDriver:
    (device,) = find_devices(backend, REVIEW_PAD.default_ids)
    driver = REVIEW_PAD.open(UsbTransport.open(device, REVIEW_PAD.interface), name)
    assert isinstance(driver, ReviewPadDriver)
    return driver


@pytest.fixture
def rig() -> Iterator[Rig]:
    pad = VirtualReviewPad()
    backend = SimulatedBackend([pad])
    driver = open_driver(backend)
    yield Rig(pad, backend, driver)
    driver.close()


def test_the_pad_is_found_by_its_default_id_and_reports_ok(rig: Rig) -> None:
    assert REVIEW_PAD.default_ids[0] == UsbId(0x1209, 0x7E01)
    assert REVIEW_PAD.kind is PeripheralKind.REVIEW_PAD
    status = rig.driver.status()
    assert (status.name, status.kind, status.state) == (
        "pad0",
        PeripheralKind.REVIEW_PAD,
        PeripheralState.OK,
    )
    assert (status.model, status.firmware) == ("termfleet virtual review pad", "1.02")


@pytest.mark.parametrize("rating", KEY_RATINGS)
def test_a_press_is_read_as_its_rating(rig: Rig, rating: Rating) -> None:
    rig.pad.press(rating)
    assert rig.driver.read_key(100) == KeyPress(rating, 1)


def test_no_press_is_none(rig: Rig) -> None:
    assert rig.driver.read_key(1) is None


def test_presses_are_read_in_order_and_a_repeated_report_is_not_a_second_rating(rig: Rig) -> None:
    rig.pad.press(Rating.SATISFIED)
    rig.pad.resend_last_report()
    rig.pad.press(Rating.BASIC)
    rig.pad.resend_last_report()
    assert rig.driver.read_key(100) == KeyPress(Rating.SATISFIED, 1)
    assert rig.driver.read_key(100) == KeyPress(Rating.BASIC, 2)
    assert rig.driver.read_key(1) is None
    assert rig.pad.pending_in(ENDPOINT_KEYS) == 0


def test_a_report_older_than_the_last_press_is_stale(rig: Rig) -> None:
    rig.pad.press(Rating.SATISFIED)
    rig.pad.press(Rating.SATISFIED)
    assert rig.driver.read_key(100) == KeyPress(Rating.SATISFIED, 1)
    assert rig.driver.read_key(100) == KeyPress(Rating.SATISFIED, 2)
    rig.pad.send_in(ENDPOINT_KEYS, encode_key_report(KeyPress(Rating.VERY_DISSATISFIED, 1)))
    assert rig.driver.read_key(1) is None


def test_a_press_made_before_the_driver_opened_is_not_taken_for_a_new_one() -> None:
    pad = VirtualReviewPad()
    backend = SimulatedBackend([pad])
    pad.last_seq = 254  # the pad has been rating all morning
    pad.press(Rating.VERY_DISSATISFIED)  # pressed while the agent restarted
    driver = open_driver(backend)
    assert driver.read_key(1) is None
    pad.press(Rating.VERY_SATISFIED)  # numbers wrap to 0 after 255
    assert driver.read_key(100) == KeyPress(Rating.VERY_SATISFIED, 0)
    driver.close()


def test_a_garbled_key_report_is_a_frame_error_and_the_next_press_reads(rig: Rig) -> None:
    rig.pad.press(Rating.SATISFIED)
    rig.pad.inject(Fault.GARBAGE, times=1)
    with pytest.raises(FrameError):
        rig.driver.read_key(100)
    rig.pad.press(Rating.BASIC)
    assert rig.driver.read_key(100) == KeyPress(Rating.BASIC, 2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=4))
def test_any_key_endpoint_traffic_reads_as_presses_none_or_frame_error(
    packets: list[bytes],
) -> None:
    pad = VirtualReviewPad()
    driver = open_driver(SimulatedBackend([pad]))
    for packet in packets:
        pad.send_in(ENDPOINT_KEYS, packet)
    for _ in packets:
        try:
            press = driver.read_key(1)
        except FrameError:
            continue
        assert press is None or press.rating in KEY_RATINGS
    driver.close()


def test_prompt_thank_and_clear_reach_the_pad(rig: Rig) -> None:
    rig.driver.prompt("请评价 办件 440117-2024-000123")
    assert (rig.pad.shown_text, rig.pad.leds) == (
        "请评价 办件 440117-2024-000123",
        LedPattern.BLINK,
    )
    rig.driver.thank()
    assert (rig.pad.shown_text, rig.pad.leds) == ("谢谢您的评价", LedPattern.CHASE)
    rig.driver.clear()
    assert (rig.pad.shown_text, rig.pad.leds) == ("", LedPattern.OFF)


def test_text_too_long_for_the_display_is_refused_before_anything_is_sent(rig: Rig) -> None:
    rig.driver.prompt("请评价")
    with pytest.raises(DisplayTextError, match="at most 61"):
        rig.driver.prompt("请评价 办件 " + "一二三四五六七八九十" * 3)
    assert rig.pad.shown_text == "请评价"


def test_a_pad_without_a_display_still_blinks_and_is_ok() -> None:
    pad = VirtualReviewPad(display=False)
    driver = open_driver(SimulatedBackend([pad]))
    driver.prompt("请评价")
    assert (pad.shown_text, pad.leds) == ("", LedPattern.BLINK)
    assert driver.status().state is PeripheralState.OK
    driver.self_test()
    driver.close()


def test_a_stuck_key_degrades_the_pad_and_is_not_reported(rig: Rig) -> None:
    rig.pad.stick_key(Rating.VERY_DISSATISFIED)
    status = rig.driver.status()
    assert (status.state, status.reason) == (PeripheralState.DEGRADED, "key_stuck")
    assert rig.pad.press(Rating.VERY_DISSATISFIED) is None
    assert rig.driver.read_key(1) is None
    rig.pad.press(Rating.SATISFIED)
    assert rig.driver.read_key(100) == KeyPress(Rating.SATISFIED, 1)


def test_a_broken_display_degrades_the_pad(rig: Rig) -> None:
    rig.pad.break_display()
    status = rig.driver.status()
    assert (status.state, status.reason) == (PeripheralState.DEGRADED, "display_fault")
    rig.pad.stick_key(Rating.BASIC)
    assert rig.driver.status().reason == "key_stuck"  # the worse of the two: ratings go wrong


def test_output_reports_may_also_come_by_set_report(rig: Rig) -> None:
    transport = rig.driver.transport
    report = encode_display_report(DisplayReport(LedPattern.STEADY, "窗口 3"))
    transport.control_out(SET_REPORT_REQUEST_TYPE, SET_REPORT, 0x0202, 0, report)
    assert (rig.pad.shown_text, rig.pad.leds) == ("窗口 3", LedPattern.STEADY)
    with pytest.raises(StalledError):
        transport.control_out(SET_REPORT_REQUEST_TYPE, SET_REPORT, 0x0202, 0, report[:-1])
    with pytest.raises(StalledError):
        transport.write(0x01, b"\x02\x09" + bytes(62))  # no such LED pattern


# --- self-test -------------------------------------------------------------------------------


def test_self_test_lights_everything_then_clears(rig: Rig) -> None:
    shown: list[DisplayReport] = []
    original = rig.pad.handle_out

    def spy(endpoint: int, data: bytes) -> None:
        shown.append(decode_display_report(data))
        original(endpoint, data)

    rig.pad.handle_out = spy  # type: ignore[method-assign]
    rig.driver.self_test()
    assert [report.leds for report in shown] == [LedPattern.ALL, LedPattern.OFF]
    assert (rig.pad.shown_text, rig.pad.leds) == ("", LedPattern.OFF)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda pad: pad.stick_key(Rating.SATISFIED), "key_stuck"),
        (lambda pad: pad.break_display(), "display_fault"),
        (lambda pad: pad.inject(Fault.STALL), "stalled"),
        (lambda pad: pad.inject(Fault.TIMEOUT), "no_answer"),
    ],
    ids=["stuck-key", "display", "stall", "timeout"],
)
def test_self_test_fails_with_the_reason(
    rig: Rig, spoil: Callable[[VirtualReviewPad], None], reason: str
) -> None:
    spoil(rig.pad)
    with pytest.raises(PeripheralError) as caught:
        rig.driver.self_test()
    assert caught.value.reason == reason


class ForgetfulPad(VirtualReviewPad):
    """Acknowledges output reports but echoes a blank one: its display controller lost it."""

    def handle_control_in(self, setup: Setup) -> bytes:
        if setup.value == 0x0202:
            return encode_display_report(DisplayReport(LedPattern.OFF))
        return super().handle_control_in(setup)


def test_self_test_fails_when_the_pad_does_not_echo_the_test_pattern() -> None:
    driver = open_driver(SimulatedBackend([ForgetfulPad()]))
    with pytest.raises(PeripheralError) as caught:
        driver.self_test()
    assert caught.value.reason == "display_echo"
    driver.close()


# --- pads of another protocol ----------------------------------------------------------------


class OtherProtocolPad(VirtualReviewPad):
    """Announces a 32-byte output report: a pad of some other protocol."""

    def handle_control_in(self, setup: Setup) -> bytes:
        if setup.value == 0x2200:
            return REPORT_DESCRIPTOR.replace(b"\x95\x3f\x91", b"\x95\x1f\x91")
        return super().handle_control_in(setup)


class NoHidDescriptorPad(VirtualReviewPad):
    interfaces: ClassVar[tuple[VirtualInterface, ...]] = (
        VirtualInterface(0, 3, endpoints=VirtualReviewPad.interfaces[0].endpoints),
    )


@pytest.mark.parametrize("pad_type", [OtherProtocolPad, NoHidDescriptorPad])
def test_a_pad_of_another_protocol_is_refused_as_unsupported(
    pad_type: type[VirtualReviewPad],
) -> None:
    (device,) = find_devices(SimulatedBackend([pad_type()]), REVIEW_PAD.default_ids)
    transport = UsbTransport.open(device, REVIEW_PAD.interface)
    with pytest.raises(FrameError) as caught:
        REVIEW_PAD.open(transport, "pad0")
    assert caught.value.reason == "unsupported"
    transport.close()


# --- the driver contract (common.md): unplug, timeout, garbage, stall ------------------------


def test_the_contract_case_is_this_driver_on_this_pad() -> None:
    assert CONTRACT_CASE.spec is REVIEW_PAD
    device = CONTRACT_CASE.make_device()
    assert isinstance(device, VirtualReviewPad)
    assert UsbId(*device.ids()) == REVIEW_PAD.default_ids[0]
    assert CONTRACT_CASE.speaks


def test_unplugged_pad_is_gone_until_replugged_and_reopened(rig: Rig) -> None:
    rig.backend.unplug(rig.pad)
    with pytest.raises(PeripheralGoneError):
        rig.driver.status()
    with pytest.raises(PeripheralGoneError):
        rig.driver.read_key(1)
    rig.backend.plug(rig.pad)
    reopened = open_driver(rig.backend, "pad0")
    assert reopened.status().state is PeripheralState.OK
    rig.pad.press(Rating.BASIC)
    assert reopened.read_key(100) == KeyPress(Rating.BASIC, 1)
    reopened.close()


@pytest.mark.parametrize(
    ("fault", "error"),
    [(Fault.TIMEOUT, NoAnswerError), (Fault.GARBAGE, FrameError), (Fault.STALL, StalledError)],
)
def test_a_faulty_pad_raises_and_the_same_driver_recovers(
    rig: Rig, fault: Fault, error: type[PeripheralError]
) -> None:
    rig.pad.inject(fault)
    for _ in range(3):
        with pytest.raises(error):
            rig.driver.status()
    rig.pad.clear_faults()
    assert rig.driver.status().state is PeripheralState.OK
    rig.pad.press(Rating.SATISFIED)
    assert rig.driver.read_key(100) == KeyPress(Rating.SATISFIED, 1)


@pytest.mark.parametrize(
    ("fault", "error"), [(Fault.TIMEOUT, NoAnswerError), (Fault.STALL, StalledError)]
)
def test_prompt_on_a_faulty_pad_raises_peripheral_errors(
    rig: Rig, fault: Fault, error: type[PeripheralError]
) -> None:
    rig.pad.inject(fault)
    with pytest.raises(error):
        rig.driver.prompt("请评价")
