"""A virtual review pad (评价器) speaking the protocol of ``firmware_bridge.codecs.review_pad``.

Tests and the demo press its keys, stick one, or break its display, and read what it shows.
Like the pad's firmware, it stops reporting a key it has found stuck.
"""

from __future__ import annotations

from typing import ClassVar

from edge.protocol import Rating
from firmware_bridge.codecs.hid import (
    DESCRIPTOR_HID,
    DESCRIPTOR_REPORT,
    GET_DESCRIPTOR,
    GET_REPORT,
    GET_REPORT_REQUEST_TYPE,
    HID_INTERFACE_CLASS,
    SET_REPORT,
    SET_REPORT_REQUEST_TYPE,
    ReportType,
    encode_hid_descriptor,
)
from firmware_bridge.codecs.review_pad import (
    ENDPOINT_DISPLAY,
    ENDPOINT_KEYS,
    MAX_PACKET_SIZE,
    PAD_USB_ID,
    REPORT_DESCRIPTOR,
    REPORT_ID_DISPLAY,
    REPORT_ID_STATUS,
    DisplayReport,
    KeyPress,
    LedPattern,
    PadStatus,
    decode_display_report,
    encode_display_report,
    encode_key_report,
    encode_status,
)
from firmware_bridge.errors import FrameError

from .device import (
    TRANSFER_INTERRUPT,
    Setup,
    StallRequest,
    VirtualDevice,
    VirtualEndpoint,
    VirtualInterface,
)

POLL_INTERVAL_MS = 10


class VirtualReviewPad(VirtualDevice):
    """A five-key review pad with LEDs and, unless ``display=False``, a one-line display."""

    # usbhid binds a HID device at plug-in; the driver takes the interface from it.
    kernel_driver_interfaces: ClassVar[frozenset[int]] = frozenset({0})

    vendor_id: ClassVar[int] = PAD_USB_ID.vendor_id
    product_id: ClassVar[int] = PAD_USB_ID.product_id
    bcd_device: ClassVar[int] = 0x0102
    manufacturer: ClassVar[str] = "termfleet"
    product: ClassVar[str] = "virtual review pad"
    interfaces: ClassVar[tuple[VirtualInterface, ...]] = (
        VirtualInterface(
            number=0,
            interface_class=HID_INTERFACE_CLASS,
            endpoints=(
                VirtualEndpoint(
                    ENDPOINT_KEYS, TRANSFER_INTERRUPT, MAX_PACKET_SIZE, POLL_INTERVAL_MS
                ),
                VirtualEndpoint(
                    ENDPOINT_DISPLAY, TRANSFER_INTERRUPT, MAX_PACKET_SIZE, POLL_INTERVAL_MS
                ),
            ),
            extra=encode_hid_descriptor(len(REPORT_DESCRIPTOR)),
        ),
    )

    def __init__(self, *, serial: str = "SIM0001", seed: int = 0, display: bool = True) -> None:
        super().__init__(serial=serial, seed=seed)
        self.display_present = display
        self.display_broken = False
        self.stuck_keys: set[Rating] = set()
        self.last_seq = 0
        self._shown = DisplayReport(LedPattern.OFF)
        self._last_key_report = b""

    # --- the test's and the demo's side ----------------------------------------------------

    def press(self, rating: Rating) -> KeyPress | None:
        """A citizen presses the key of ``rating``; None if that key is stuck (not reported)."""
        with self._lock:  # the demo presses from its own thread while the driver reads
            if rating in self.stuck_keys:
                return None
            self.last_seq = (self.last_seq + 1) % 256
            press = KeyPress(rating, self.last_seq)
            self._last_key_report = encode_key_report(press)
            self.send_in(ENDPOINT_KEYS, self._last_key_report)
            return press

    def resend_last_report(self) -> None:
        """Queue the last key report again, as a pad repeating a report the host already has."""
        self.send_in(ENDPOINT_KEYS, self._last_key_report)

    def stick_key(self, rating: Rating) -> None:
        with self._lock:
            self.stuck_keys.add(rating)

    def unstick_key(self, rating: Rating) -> None:
        with self._lock:
            self.stuck_keys.discard(rating)

    def break_display(self) -> None:
        self.display_broken = True

    @property
    def shown_text(self) -> str:
        """The text on the display now ("" when blank, broken or absent)."""
        if not self.display_present or self.display_broken:
            return ""
        return self._shown.text

    @property
    def leds(self) -> LedPattern:
        return self._shown.leds

    def pad_status(self) -> PadStatus:
        """What the pad's feature report 3 says now."""
        release = self.device_release()  # the status report names the release it enumerates with
        with self._lock:
            return PadStatus(
                firmware=f"{release >> 8:x}.{release & 0xFF:02x}",
                stuck_keys=frozenset(self.stuck_keys),
                display_present=self.display_present,
                display_fault=self.display_present and self.display_broken,
                last_seq=self.last_seq,
            )

    # --- the host's side ------------------------------------------------------------------------

    def handle_out(self, endpoint: int, data: bytes) -> None:
        if endpoint != ENDPOINT_DISPLAY:
            raise StallRequest
        self._apply(data)

    def handle_control_in(self, setup: Setup) -> bytes:
        if setup.standard and setup.request == GET_DESCRIPTOR and setup.index == 0:
            if setup.value == DESCRIPTOR_REPORT << 8:
                return REPORT_DESCRIPTOR
            if setup.value == DESCRIPTOR_HID << 8:
                return self.interfaces[0].extra
        if (setup.request_type, setup.request, setup.index) == (
            GET_REPORT_REQUEST_TYPE,
            GET_REPORT,
            0,
        ):
            if setup.value == ReportType.FEATURE << 8 | REPORT_ID_STATUS:
                return encode_status(self.pad_status())
            if setup.value == ReportType.OUTPUT << 8 | REPORT_ID_DISPLAY:
                return encode_display_report(self._shown)
        raise StallRequest

    def handle_control_out(self, setup: Setup, data: bytes) -> None:
        output = ReportType.OUTPUT << 8 | REPORT_ID_DISPLAY
        if (setup.request_type, setup.request, setup.value) != (
            SET_REPORT_REQUEST_TYPE,
            SET_REPORT,
            output,
        ):
            raise StallRequest
        self._apply(data)

    def _apply(self, data: bytes) -> None:
        try:
            self._shown = decode_display_report(data)
        except FrameError:
            # The firmware refuses a report it cannot parse with a STALL, so the host hears of it.
            raise StallRequest from None
