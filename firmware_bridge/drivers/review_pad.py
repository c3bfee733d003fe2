"""The review pad (评价器) driver: rating keys in, "please rate" prompt and "thank you" out.

The protocol is in ``firmware_bridge.codecs.review_pad``. On opening, the driver checks that the
pad's report descriptor announces that protocol and takes the pad's last press number as the
baseline, so a press made before the driver was there (still in the pad's endpoint buffer) is
never bound to a case. A pad that reboots starts numbering again; it also leaves the bus, and the
bridge's reopen takes a new baseline.
"""

from __future__ import annotations

import time

import usb.util

from edge.protocol import PeripheralKind, PeripheralState, PeripheralStatus
from firmware_bridge.codecs.hid import (
    DESCRIPTOR_REPORT,
    GET_DESCRIPTOR,
    GET_DESCRIPTOR_REQUEST_TYPE,
    GET_REPORT,
    GET_REPORT_REQUEST_TYPE,
    ReportType,
    decode_hid_descriptor,
    decode_report_descriptor,
)
from firmware_bridge.codecs.review_pad import (
    DISPLAY_REPORT_SIZE,
    ENDPOINT_DISPLAY,
    ENDPOINT_KEYS,
    MAX_PACKET_SIZE,
    PAD_USB_ID,
    REPORT_ID_DISPLAY,
    REPORT_ID_STATUS,
    STATUS_REPORT_SIZE,
    DisplayReport,
    DisplayTextError,
    KeyPress,
    LedPattern,
    PadStatus,
    check_layout,
    decode_display_report,
    decode_key_report,
    decode_status,
    encode_display_report,
    is_newer,
)
from firmware_bridge.driver import DriverSpec, UsbDriver
from firmware_bridge.errors import FrameError, NoAnswerError, PeripheralError
from firmware_bridge.transport import UsbTransport, usb_errors

__all__ = ["REVIEW_PAD", "DisplayTextError", "KeyPress", "ReviewPadDriver"]

THANK_YOU_TEXT = "谢谢您的评价"
SELF_TEST_TEXT = "自检 SELF TEST 评价器"


class ReviewPadDriver(UsbDriver):
    """One review pad: its status, its key presses, and what its LEDs and display show."""

    kind = PeripheralKind.REVIEW_PAD

    def __init__(self, transport: UsbTransport, name: str) -> None:
        super().__init__(transport, name)
        self._check_protocol()
        self._last_seq = self._read_status().last_seq

    def status(self) -> PeripheralStatus:
        """ok, or degraded with ``key_stuck`` (ratings would be wrong) or ``display_fault``."""
        reason = _problem(self._read_status())
        if reason:
            return self.report(PeripheralState.DEGRADED, reason)
        return self.report(PeripheralState.OK)

    def read_key(self, timeout_ms: int = 1000) -> KeyPress | None:
        """The next new press within ``timeout_ms``, or None if nobody pressed a key.

        A report whose number is not newer than the last press seen is a repeat or a stale
        report, never a second rating; it is skipped. Garbled reports raise FrameError.
        """
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            # pyusb reads 0 as "wait forever"; a spent budget still polls once, for 1 ms.
            left_ms = max(1, round((deadline - time.monotonic()) * 1000))
            try:
                report = self.transport.read(ENDPOINT_KEYS, MAX_PACKET_SIZE, left_ms)
            except NoAnswerError:
                return None
            press = decode_key_report(report)
            if is_newer(press.seq, self._last_seq):
                self._last_seq = press.seq
                return press
            if time.monotonic() >= deadline:
                return None

    def prompt(self, text: str) -> None:
        """Blink the keys and show ``text``; DisplayTextError (a ValueError) if it cannot fit."""
        self._show(DisplayReport(LedPattern.BLINK, text))

    def thank(self, text: str = THANK_YOU_TEXT) -> None:
        self._show(DisplayReport(LedPattern.CHASE, text))

    def clear(self) -> None:
        self._show(DisplayReport(LedPattern.OFF))

    def self_test(self) -> None:
        """Light every LED with a test line, read it back, check keys and display, then clear."""
        shown = DisplayReport(LedPattern.ALL, SELF_TEST_TEXT)
        self._show(shown)
        echo = decode_display_report(
            self._get_report(ReportType.OUTPUT, REPORT_ID_DISPLAY, DISPLAY_REPORT_SIZE)
        )
        if echo != shown:
            msg = f"{self.name}: the pad echoed {echo}, not the test pattern it was sent"
            raise PeripheralError(msg, reason="display_echo")
        reason = _problem(self._read_status())
        self.clear()
        if reason:
            msg = f"{self.name}: self-test found {reason}"
            raise PeripheralError(msg, reason=reason)

    def _show(self, report: DisplayReport) -> None:
        self.transport.write(ENDPOINT_DISPLAY, encode_display_report(report))

    def _read_status(self) -> PadStatus:
        return decode_status(
            self._get_report(ReportType.FEATURE, REPORT_ID_STATUS, STATUS_REPORT_SIZE)
        )

    def _get_report(self, kind: ReportType, report_id: int, size: int) -> bytes:
        return self.transport.control_in(
            GET_REPORT_REQUEST_TYPE,
            GET_REPORT,
            kind << 8 | report_id,
            self.transport.interface,
            size,
        )

    def _check_protocol(self) -> None:
        """FrameError (reason ``unsupported``) unless the pad announces this driver's reports."""
        interface = self.transport.interface
        with usb_errors("reading the configuration"):
            config = self.transport.device.get_active_configuration()
            found = usb.util.find_descriptor(config, bInterfaceNumber=interface)
        if found is None:
            msg = f"{self.name}: the pad has no interface {interface}"
            raise FrameError(msg, reason="unsupported")
        extra = bytes(found.extra_descriptors)
        length = decode_hid_descriptor(extra).report_descriptor_length
        descriptor = self.transport.control_in(
            GET_DESCRIPTOR_REQUEST_TYPE, GET_DESCRIPTOR, DESCRIPTOR_REPORT << 8, interface, length
        )
        check_layout(decode_report_descriptor(descriptor))


def _problem(status: PadStatus) -> str:
    """The status's reason to be degraded, or "": a stuck key first, as it would rate wrongly."""
    if status.stuck_keys:
        return "key_stuck"
    if status.display_present and status.display_fault:
        return "display_fault"
    return ""


REVIEW_PAD = DriverSpec(
    kind=PeripheralKind.REVIEW_PAD,
    default_ids=(PAD_USB_ID,),
    open=ReviewPadDriver,
    interface=0,
)
