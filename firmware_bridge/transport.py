"""The thin pyusb layer every driver talks through: find, open, transfer, close.

It is the one module that knows pyusb's errors; it turns them into ``firmware_bridge.errors``
so drivers and the bridge handle "unplugged", "no answer" and "stalled" the same way on the
simulated bus and on libusb.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import usb.backend
import usb.core
import usb.util

from .errors import (
    AccessError,
    NoAnswerError,
    PeripheralError,
    PeripheralGoneError,
    StalledError,
)
from .usb_ids import UsbId

DEFAULT_TIMEOUT_MS = 1000
GET_STATUS_REQUEST_TYPE = 0x80  # device-to-host, standard, recipient device
GET_STATUS = 0x00
GET_STATUS_LENGTH = 2
"""Every USB device answers GET_STATUS (USB 2.0, 9.4.5), whichever driver holds its interfaces."""
_GONE = {errno.ENODEV, errno.ENOENT, errno.ESHUTDOWN}


@contextmanager
def usb_errors(what: str) -> Iterator[None]:
    """Translate pyusb's errors raised inside into this package's, naming ``what`` failed."""
    try:
        yield
    except usb.core.USBError as exc:
        raise _translated(what, exc) from None


def _translated(what: str, exc: usb.core.USBError) -> PeripheralError:
    code = exc.errno
    if isinstance(exc, usb.core.USBTimeoutError) or code == errno.ETIMEDOUT:
        return NoAnswerError(f"{what}: no answer (timeout)")
    if code in _GONE:
        return PeripheralGoneError(f"{what}: device gone ({exc.strerror})")
    if code == errno.EPIPE:
        return StalledError(f"{what}: stalled by the device")
    if code in {errno.EACCES, errno.EPERM, errno.EBUSY}:
        return AccessError(f"{what}: {exc.strerror}; check the udev rules (docs/peripherals.md)")
    return PeripheralError(f"{what}: USB error {exc.strerror}", reason="usb_error")


def find_devices(backend: usb.backend.IBackend, ids: Sequence[UsbId]) -> list[usb.core.Device]:
    """The devices on the bus whose vendor/product id is one of ``ids``, in bus order."""
    wanted = set(ids)

    def matches(device: usb.core.Device) -> bool:
        return UsbId(device.idVendor, device.idProduct) in wanted

    with usb_errors("USB enumeration"):
        found = usb.core.find(find_all=True, backend=backend, custom_match=matches)
        return sorted(found, key=lambda d: (d.bus or 0, d.address or 0))


@dataclass(frozen=True)
class DeviceInfo:
    """What the device says about itself, for the heartbeat's model and firmware fields."""

    usb_id: UsbId
    manufacturer: str
    product: str
    serial: str
    firmware: str

    @property
    def model(self) -> str:
        return " ".join(part for part in (self.manufacturer, self.product) if part)


class UsbTransport:
    """One opened device and its claimed interface; every transfer raises PeripheralError."""

    def __init__(self, device: usb.core.Device, interface: int = 0) -> None:
        self.device = device
        self.interface = interface
        self._claimed = False
        self._detached = False

    @classmethod
    def open(
        cls, device: usb.core.Device, interface: int = 0, *, claim: bool = True
    ) -> UsbTransport:
        """Open ``device``; with ``claim`` take its interface from the kernel driver too.

        Without ``claim`` only requests to the device itself work (descriptors, GET_STATUS), and
        the kernel driver the terminal's own software uses (a camera's uvcvideo) keeps it.
        """
        transport = cls(device, interface)
        if not claim:
            with usb_errors(f"opening {UsbId(device.idVendor, device.idProduct)}"):
                # pyusb opens the handle on first use; a standard request makes that now, so
                # a device node we may not open is an error here (strings would hide it).
                device.ctrl_transfer(
                    GET_STATUS_REQUEST_TYPE, GET_STATUS, 0, 0, GET_STATUS_LENGTH, DEFAULT_TIMEOUT_MS
                )
            return transport
        with usb_errors(f"opening {UsbId(device.idVendor, device.idProduct)}"):
            try:
                if device.is_kernel_driver_active(interface):
                    # usbhid and usblp bind these devices; we speak their protocol ourselves,
                    # and give the device back to its driver on close.
                    device.detach_kernel_driver(interface)
                    transport._detached = True
            except NotImplementedError:
                pass  # a backend without kernel drivers (the simulated bus, some OSes)
            try:
                configured = device.get_active_configuration() is not None
            except usb.core.USBError as exc:
                if exc.errno in _GONE or exc.errno in {errno.EACCES, errno.EPERM}:
                    raise
                configured = False
            if not configured:
                device.set_configuration()
            usb.util.claim_interface(device, interface)
        transport._claimed = True
        return transport

    def info(self) -> DeviceInfo:
        device = self.device
        with usb_errors("reading the device's strings"):
            return DeviceInfo(
                usb_id=UsbId(device.idVendor, device.idProduct),
                manufacturer=_string(device, device.iManufacturer),
                product=_string(device, device.iProduct),
                serial=_string(device, device.iSerialNumber),
                firmware=_bcd(device.bcdDevice),
            )

    def write(self, endpoint: int, data: bytes, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
        with usb_errors(f"writing endpoint {endpoint:#04x}"):
            written = self.device.write(endpoint, data, timeout_ms)
        if written != len(data):
            msg = f"endpoint {endpoint:#04x} took {written} of {len(data)} bytes"
            raise NoAnswerError(msg)

    def read(self, endpoint: int, size: int, timeout_ms: int = DEFAULT_TIMEOUT_MS) -> bytes:
        with usb_errors(f"reading endpoint {endpoint:#04x}"):
            return bytes(self.device.read(endpoint, size, timeout_ms))

    def control_in(  # noqa: PLR0913, PLR0917 - the fields of a USB setup packet
        self,
        request_type: int,
        request: int,
        value: int,
        index: int,
        length: int,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> bytes:
        with usb_errors(f"control request {request:#04x}"):
            answer = self.device.ctrl_transfer(
                request_type, request, value, index, length, timeout_ms
            )
        return bytes(answer)

    def control_out(  # noqa: PLR0913, PLR0917 - the fields of a USB setup packet
        self,
        request_type: int,
        request: int,
        value: int,
        index: int,
        data: bytes = b"",
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> None:
        with usb_errors(f"control request {request:#04x}"):
            self.device.ctrl_transfer(request_type, request, value, index, data, timeout_ms)

    def reset(self) -> None:
        with usb_errors("resetting the device"):
            self.device.reset()

    def close(self) -> None:
        """Release the interface, give it back to its kernel driver, free the handle.

        Never raises: the device may be gone.
        """
        try:
            if self._claimed:
                usb.util.release_interface(self.device, self.interface)
            if self._detached:
                self.device.attach_kernel_driver(self.interface)
        except (usb.core.USBError, NotImplementedError):
            pass
        finally:
            self._claimed = self._detached = False
            usb.util.dispose_resources(self.device)


def _string(device: usb.core.Device, index: int) -> str:
    if not index:
        return ""
    try:
        return str(usb.util.get_string(device, index) or "")
    except (usb.core.USBError, ValueError):
        # Many cheap peripherals stall string requests; a missing name is not a fault.
        return ""


def _bcd(value: int) -> str:
    return f"{value >> 8:x}.{value & 0xFF:02x}"
