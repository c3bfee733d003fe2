"""What every peripheral driver offers the bridge, and the small base they share.

A driver wraps one opened device: it asks the device for its status, runs the commissioning
self-test, and closes. Drivers raise ``firmware_bridge.errors`` only; the bridge turns those
into an ``absent`` or ``fault`` status with the error's reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge.protocol import PeripheralKind, PeripheralState, PeripheralStatus

from .transport import DeviceInfo, UsbTransport
from .usb_ids import UsbId


class PeripheralDriver(Protocol):
    name: str
    kind: PeripheralKind

    def status(self) -> PeripheralStatus:
        """Ask the device how it is; raises PeripheralError when it cannot answer."""

    def self_test(self) -> None:
        """The commissioning check (test print, card read …); raises PeripheralError on failure."""

    def close(self) -> None:
        """Release the device; never raises."""


@dataclass(frozen=True)
class DriverSpec:
    """A kind of peripheral this package drives, and how to recognise and open one."""

    kind: PeripheralKind
    default_ids: tuple[UsbId, ...]
    """Ids of models known to work; a terminal's config may name others."""
    open: Callable[[UsbTransport, str], PeripheralDriver]
    """Opens a driver over a transport whose interface is already claimed, given its name."""
    interface: int = 0
    claim: bool = True
    """False for presence-only peripherals: their kernel driver keeps the device."""


class UsbDriver:
    """The part every driver shares: its name, transport and what the device says it is."""

    kind: PeripheralKind = PeripheralKind.UNKNOWN

    def __init__(self, transport: UsbTransport, name: str) -> None:
        self.transport = transport
        self.name = name
        self.info: DeviceInfo = transport.info()

    def report(self, state: PeripheralState, reason: str = "") -> PeripheralStatus:
        """A status of this peripheral, with the model and firmware the device named."""
        return PeripheralStatus(
            name=self.name,
            kind=self.kind,
            state=state,
            reason=reason,
            model=self.info.model,
            firmware=self.info.firmware,
        )

    def close(self) -> None:
        self.transport.close()
