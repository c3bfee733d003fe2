"""Presence-only peripherals: document camera (高拍仪), citizen-card (民生卡) reader, camera.

termfleet does not speak their protocols; the kiosk's own software does, through their kernel
drivers. So the driver never claims an interface: it asks the device for its standard status
(GET_STATUS, which every USB device answers and no kernel driver owns) to tell that it is still
on the bus and answering.
"""

from __future__ import annotations

from edge.protocol import PeripheralKind, PeripheralState, PeripheralStatus
from firmware_bridge.driver import DriverSpec, UsbDriver
from firmware_bridge.errors import FrameError
from firmware_bridge.transport import (
    GET_STATUS,
    GET_STATUS_LENGTH,
    GET_STATUS_REQUEST_TYPE,
    UsbTransport,
)
from firmware_bridge.usb_ids import UsbId


class PresenceDriver(UsbDriver):
    """A peripheral that is ok when it is on the bus and answers GET_STATUS."""

    def __init__(self, transport: UsbTransport, name: str, kind: PeripheralKind) -> None:
        super().__init__(transport, name)
        self.kind = kind

    def status(self) -> PeripheralStatus:
        answer = self.transport.control_in(
            GET_STATUS_REQUEST_TYPE, GET_STATUS, 0, 0, GET_STATUS_LENGTH
        )
        if len(answer) != GET_STATUS_LENGTH:
            msg = f"GET_STATUS answered {len(answer)} bytes, not {GET_STATUS_LENGTH}"
            raise FrameError(msg)
        return self.report(PeripheralState.OK)

    def self_test(self) -> None:
        self.status()


def presence_spec(kind: PeripheralKind, default_ids: tuple[UsbId, ...]) -> DriverSpec:
    """The spec of a presence-only peripheral of ``kind``, found by ``default_ids``."""
    return DriverSpec(
        kind=kind,
        default_ids=default_ids,
        open=lambda transport, name: PresenceDriver(transport, name, kind),
        claim=False,
    )
