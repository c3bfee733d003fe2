"""Which drivers exist, and which peripherals each kind of terminal has by default.

A terminal's config may name other ids or another set (``[[usb_peripherals]]`` in the agent's
config); these are the defaults an agent uses when it names none.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge.protocol import DeviceKind, PeripheralKind

from .bridge import PeripheralSlot
from .driver import DriverSpec
from .drivers.id_reader import ID_CARD_READER
from .drivers.presence import presence_spec
from .drivers.printer import RECEIPT_PRINTER
from .drivers.review_pad import REVIEW_PAD
from .usb_ids import UsbId

# Presence-only peripherals are recognised by id alone. Makers differ by hall and tender, so
# these defaults are pid.codes test ids that the simulated devices use; a real terminal names
# its own in the agent config (docs/peripherals.md shows how to read them off with lsusb).
DOCUMENT_CAMERA = presence_spec(PeripheralKind.DOCUMENT_CAMERA, (UsbId(0x1209, 0x7E04),))
CITIZEN_CARD_READER = presence_spec(PeripheralKind.CITIZEN_CARD_READER, (UsbId(0x1209, 0x7E05),))
CAMERA = presence_spec(PeripheralKind.CAMERA, (UsbId(0x1209, 0x7E06),))

DRIVERS: dict[PeripheralKind, DriverSpec] = {
    spec.kind: spec
    for spec in (
        REVIEW_PAD,
        ID_CARD_READER,
        RECEIPT_PRINTER,
        DOCUMENT_CAMERA,
        CITIZEN_CARD_READER,
        CAMERA,
    )
}

TERMINAL_PERIPHERALS: dict[DeviceKind, tuple[tuple[str, PeripheralKind], ...]] = {
    DeviceKind.KIOSK: (
        ("printer0", PeripheralKind.RECEIPT_PRINTER),
        ("idreader0", PeripheralKind.ID_CARD_READER),
        ("camera0", PeripheralKind.CAMERA),
    ),
    DeviceKind.REVIEW_PAD: (("keys0", PeripheralKind.REVIEW_PAD),),
    DeviceKind.STATION_PC: (
        ("idreader0", PeripheralKind.ID_CARD_READER),
        ("doccam0", PeripheralKind.DOCUMENT_CAMERA),
        ("printer0", PeripheralKind.RECEIPT_PRINTER),
        ("cardreader0", PeripheralKind.CITIZEN_CARD_READER),
        ("pad0", PeripheralKind.REVIEW_PAD),
    ),
    DeviceKind.BOOTH: (
        ("camera0", PeripheralKind.CAMERA),
        ("doccam0", PeripheralKind.DOCUMENT_CAMERA),
    ),
}
"""The USB peripherals of each kind of terminal (DOMAIN.md). A kiosk's A4 printer, screen and
call button are not USB peripherals this package drives, so they are not here."""


def slot(
    name: str, kind: PeripheralKind, ids: Sequence[UsbId] = (), *, presence_only: bool = False
) -> PeripheralSlot:
    """A slot for a peripheral of ``kind``; ValueError when no driver handles that kind.

    ``presence_only`` watches a peripheral of any kind without speaking its protocol, so that
    another program on the terminal keeps it; it needs the ids, having no driver's defaults.
    """
    if presence_only:
        if not ids:
            msg = f"{name}: a presence-only peripheral needs its ids"
            raise ValueError(msg)
        return PeripheralSlot(name, presence_spec(kind, tuple(ids)), tuple(ids))
    spec = DRIVERS.get(kind)
    if spec is None:
        known = ", ".join(sorted(k.value for k in DRIVERS))
        msg = f"{name}: no USB driver for {kind.value} peripherals (known: {known})"
        raise ValueError(msg)
    return PeripheralSlot(name, spec, tuple(ids))


def default_slots(kind: DeviceKind) -> tuple[PeripheralSlot, ...]:
    """The peripherals a terminal of ``kind`` has, found by their default ids."""
    return tuple(slot(name, pkind) for name, pkind in TERMINAL_PERIPHERALS.get(kind, ()))
