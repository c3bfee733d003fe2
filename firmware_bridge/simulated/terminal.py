"""A terminal's peripherals on a simulated bus: what ``peripherals = "simulated"`` runs on.

The agent drives them with the same drivers and bridge as real hardware; tests and the demo
reach the virtual devices by slot name to press keys, run out of paper or unplug them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge.protocol import PeripheralKind
from firmware_bridge.bridge import PeripheralSlot

from .backend import SimulatedBackend
from .device import VirtualDevice
from .id_reader import SAMPLE_CARD, VirtualIdCardReader
from .presence import SMART_CARD_CLASS, VIDEO_CLASS, VirtualPresenceDevice
from .printer import VirtualReceiptPrinter
from .review_pad import VirtualReviewPad

_PRESENCE = {
    PeripheralKind.DOCUMENT_CAMERA: ("virtual document camera", VIDEO_CLASS),
    PeripheralKind.CAMERA: ("virtual camera", VIDEO_CLASS),
    PeripheralKind.CITIZEN_CARD_READER: ("virtual citizen-card reader", SMART_CARD_CLASS),
}
_SPEAKING: dict[PeripheralKind, Callable[[str], VirtualDevice]] = {
    PeripheralKind.REVIEW_PAD: lambda serial: VirtualReviewPad(serial=serial),
    # A test card lies on the reader, so the commissioning card read passes as on site.
    PeripheralKind.ID_CARD_READER: lambda serial: VirtualIdCardReader(
        card=SAMPLE_CARD, serial=serial
    ),
    PeripheralKind.RECEIPT_PRINTER: lambda serial: VirtualReceiptPrinter(serial=serial),
}


@dataclass(frozen=True)
class SimulatedPeripherals:
    """A simulated bus with one working virtual device per slot, by slot name."""

    backend: SimulatedBackend
    devices: dict[str, VirtualDevice]


def virtual_device(slot: PeripheralSlot, serial: str) -> VirtualDevice:
    """A working virtual device that fills ``slot`` (its first wanted id for presence-only)."""
    kind = slot.spec.kind
    if kind in _SPEAKING:
        return _SPEAKING[kind](serial)
    if kind in _PRESENCE:
        product, interface_class = _PRESENCE[kind]
        usb_id = slot.wanted_ids[0]
        return VirtualPresenceDevice(
            usb_id.vendor_id,
            usb_id.product_id,
            product=product,
            interface_class=interface_class,
            serial=serial,
        )
    msg = f"{slot.name}: no virtual device for {kind.value} peripherals"
    raise ValueError(msg)


def simulated_peripherals(
    slots: Sequence[PeripheralSlot], serial_prefix: str = "SIM"
) -> SimulatedPeripherals:
    devices = {slot.name: virtual_device(slot, f"{serial_prefix}-{slot.name}") for slot in slots}
    return SimulatedPeripherals(SimulatedBackend(devices.values()), devices)
