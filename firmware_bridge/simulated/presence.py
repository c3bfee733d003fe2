"""A virtual presence-only peripheral: it enumerates with its ids and answers GET_STATUS."""

from __future__ import annotations

from .device import VirtualDevice, VirtualInterface

VIDEO_CLASS = 0x0E
SMART_CARD_CLASS = 0x0B


class VirtualPresenceDevice(VirtualDevice):
    """A camera, document camera or card reader whose protocol termfleet leaves to others."""

    def __init__(
        self,
        vendor_id: int,
        product_id: int,
        *,
        product: str = "virtual camera",
        interface_class: int = VIDEO_CLASS,
        serial: str = "SIM0001",
    ) -> None:
        super().__init__(serial=serial)
        self._ids = (vendor_id, product_id)
        self._product = product
        self._interfaces = (VirtualInterface(0, interface_class),)

    def ids(self) -> tuple[int, int]:
        return self._ids

    def current_interfaces(self) -> tuple[VirtualInterface, ...]:
        return self._interfaces

    def strings(self) -> tuple[str, str, str]:
        return self.manufacturer, self._product, self.serial
