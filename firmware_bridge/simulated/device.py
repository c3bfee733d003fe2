"""A virtual USB device: descriptors, endpoint queues, and the protocol a subclass speaks.

Subclasses describe their interfaces and endpoints, answer OUT transfers and class or vendor
control requests, and queue IN data with ``send_in``. Standard requests the host library makes
itself (string descriptors) are answered here.
"""

from __future__ import annotations

import enum
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

ENDPOINT_IN = 0x80
TRANSFER_CONTROL = 0
TRANSFER_BULK = 2
TRANSFER_INTERRUPT = 3

REQUEST_GET_STATUS = 0x00
REQUEST_GET_DESCRIPTOR = 0x06
DESCRIPTOR_STRING = 0x03
LANGUAGE_EN_US = 0x0409
REQUEST_TYPE_MASK = 0x60
REQUEST_TYPE_STANDARD = 0x00


class Fault(enum.Enum):
    """What a device does wrong, injected by a test with ``VirtualDevice.inject``."""

    TIMEOUT = "timeout"
    """Transfers get no answer: the host's timeout expires (at once here, to keep tests fast)."""
    STALL = "stall"
    """Transfers are refused with a STALL handshake."""
    GARBAGE = "garbage"
    """IN data is replaced by random bytes of a random length."""


class StallRequest(Exception):  # noqa: N818 - a handshake, not an error of ours
    """Raised by a device's request handler to answer with a STALL, as real firmware does."""


@dataclass(frozen=True)
class Setup:
    """The setup packet of a control transfer."""

    request_type: int
    request: int
    value: int
    index: int
    length: int

    @property
    def device_to_host(self) -> bool:
        return bool(self.request_type & ENDPOINT_IN)

    @property
    def standard(self) -> bool:
        return self.request_type & REQUEST_TYPE_MASK == REQUEST_TYPE_STANDARD


@dataclass(frozen=True)
class VirtualEndpoint:
    address: int
    transfer_type: int
    max_packet_size: int = 64
    interval: int = 0

    @property
    def is_in(self) -> bool:
        return bool(self.address & ENDPOINT_IN)


@dataclass(frozen=True)
class VirtualInterface:
    number: int
    interface_class: int
    subclass: int = 0
    protocol: int = 0
    endpoints: tuple[VirtualEndpoint, ...] = ()
    extra: bytes = b""
    """Class-specific descriptors after the interface descriptor (HID, DFU functional)."""


@dataclass
class _Faults:
    active: dict[Fault, int] = field(default_factory=dict)
    """Fault → transfers left to spoil; -1 spoils every transfer until cleared."""

    def take(self) -> Fault | None:
        for fault, left in list(self.active.items()):
            if left == -1:
                return fault
            if left > 0:
                if left == 1:
                    del self.active[fault]
                else:
                    self.active[fault] = left - 1
                return fault
        return None


class VirtualDevice:
    """One virtual peripheral. Subclasses set the class attributes and override the handlers."""

    vendor_id: ClassVar[int] = 0x1209
    product_id: ClassVar[int] = 0x0001
    device_class: ClassVar[int] = 0
    bcd_device: ClassVar[int] = 0x0100
    manufacturer: ClassVar[str] = "termfleet"
    product: ClassVar[str] = "virtual device"
    interfaces: ClassVar[tuple[VirtualInterface, ...]] = ()
    kernel_driver_interfaces: ClassVar[frozenset[int]] = frozenset()
    """Interfaces an operating system's driver binds at plug-in (usbhid, usblp, uvcvideo)."""

    def __init__(self, *, serial: str = "SIM0001", seed: int = 0) -> None:
        self.serial = serial
        self._random = random.Random(seed)
        self._lock = threading.Condition()
        self._in_queues: dict[int, deque[bytes]] = {}
        self._faults = _Faults()
        self._reenumerate: Callable[[VirtualDevice], None] | None = None
        self.access_denied = False
        """Opening fails as when the device node is not the agent's (no udev rule)."""
        self.kernel_bound: set[int] = set(self.kernel_driver_interfaces)
        """Interfaces a kernel driver holds now; tests see what the host detached."""

    # --- what subclasses override -------------------------------------------------------

    def handle_out(self, endpoint: int, data: bytes) -> None:
        """Bytes the host wrote to an OUT endpoint."""
        raise StallRequest

    def handle_control_in(self, setup: Setup) -> bytes:
        """A class or vendor request that reads; answer at most ``setup.length`` bytes."""
        raise StallRequest

    def handle_control_out(self, setup: Setup, data: bytes) -> None:
        """A class or vendor request that writes."""
        raise StallRequest

    def ids(self) -> tuple[int, int]:
        """The ids the device enumerates with now (a DFU device changes them on detach)."""
        return self.vendor_id, self.product_id

    def device_release(self) -> int:
        """The bcdDevice the device enumerates with now (a firmware update changes it)."""
        return self.bcd_device

    def current_interfaces(self) -> tuple[VirtualInterface, ...]:
        return self.interfaces

    def reset(self) -> None:
        """A USB bus reset (the host's reset_device, or a replug)."""

    # --- what subclasses and tests call --------------------------------------------------

    def send_in(self, endpoint: int, data: bytes) -> None:
        """Queue one packet for the host to read from an IN endpoint."""
        with self._lock:
            self._in_queues.setdefault(endpoint, deque()).append(bytes(data))
            self._lock.notify_all()

    def inject(self, fault: Fault, *, times: int = -1) -> None:
        """Spoil the next ``times`` transfers with ``fault`` (every transfer when -1)."""
        with self._lock:
            self._faults.active[fault] = times

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.active.clear()

    def reenumerate(self) -> None:
        """Leave the bus and come back at once with the current descriptors.

        A device does this when it switches into or out of DFU mode; the host's handles go stale.
        """
        if self._reenumerate is not None:
            self._reenumerate(self)

    def pending_in(self, endpoint: int) -> int:
        with self._lock:
            return len(self._in_queues.get(endpoint, ()))

    # --- what the backend calls ------------------------------------------------------------

    def attach(self, reenumerate: Callable[[VirtualDevice], None] | None) -> None:
        with self._lock:
            self._reenumerate = reenumerate
            self._in_queues.clear()
            if reenumerate is not None:  # plugged in: the kernel binds its drivers again
                self.kernel_bound = set(self.kernel_driver_interfaces)

    def take_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.take()

    def garbage(self) -> bytes:
        with self._lock:
            return self._random.randbytes(self._random.randint(1, 64))

    def read_in(self, endpoint: int, timeout_s: float) -> bytes | None:
        """The next packet queued on ``endpoint``, waiting up to ``timeout_s``; None on timeout."""
        with self._lock:
            queue = self._in_queues.setdefault(endpoint, deque())
            self._lock.wait_for(lambda: bool(queue), timeout=timeout_s)
            return queue.popleft() if queue else None

    def control_in(self, setup: Setup) -> bytes:
        if setup.standard and setup.request == REQUEST_GET_STATUS:
            return bytes(2)[: setup.length]  # bus-powered, no remote wake-up
        string_request = setup.standard and setup.request == REQUEST_GET_DESCRIPTOR
        if string_request and setup.value >> 8 == DESCRIPTOR_STRING:
            return self._string_descriptor(setup.value & 0xFF)[: setup.length]
        return self.handle_control_in(setup)[: setup.length]

    def strings(self) -> tuple[str, str, str]:
        return self.manufacturer, self.product, self.serial

    def _string_descriptor(self, index: int) -> bytes:
        if index == 0:
            return bytes([4, DESCRIPTOR_STRING]) + LANGUAGE_EN_US.to_bytes(2, "little")
        strings = self.strings()
        if index > len(strings) or not strings[index - 1]:
            raise StallRequest
        encoded = strings[index - 1].encode("utf-16-le")
        return bytes([2 + len(encoded), DESCRIPTOR_STRING]) + encoded
