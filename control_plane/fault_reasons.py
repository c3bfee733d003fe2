"""The bounded list of reasons a peripheral fault is counted under, per peripheral kind. Pure.

A reason is free text on the wire (``PeripheralStatus.reason``), so a metric label taken from it
as it comes would be unbounded: a newer agent, a typo, a vendor's own word. Only the reasons the
drivers (``firmware_bridge/``) and the simulator (``edge/simulator/health.py``) produce are named,
each under the peripheral kinds that can report it; anything else counts as ``other``. That keeps
``termfleet_peripheral_faults`` at the size of ``KNOWN_PAIRS`` (about 150 series) whatever the
terminals send, so every pair can always be present, zero or not: an alert on printers out of
paper then reads a 0, not a missing series, while no printer is out of paper.
"""

from __future__ import annotations

from edge.protocol import PeripheralKind

OTHER = "other"
"""A reason outside the known list for its kind, or none given."""

ANY_PERIPHERAL = (
    "unplugged",  # bridge.py: gone after it had been seen
    "not_found",  # bridge.py: never seen since start-up
    "updating_firmware",  # bridge.py: lent to a firmware update
    "no_answer",  # errors.NoAnswerError: a USB timeout
    "stalled",  # errors.StalledError
    "no_access",  # errors.AccessError: udev rules
    "usb_error",  # transport.py: any other USB error
    "garbled",  # errors.FrameError: a frame that does not decode
    "unsupported",  # codecs: a device that speaks another protocol
    "error",  # errors.PeripheralError's default; escpos: unrecoverable error
)
"""What the bridge and the USB transport report for a peripheral of any kind."""
PRINTER = (
    "paper_out",
    "paper_near_end",
    "paper_jam",  # the simulator's A4 printer
    "cover_open",
    "cutter_error",
    "auto_recoverable_error",
    "offline",
    "no_status_channel",  # a unidirectional printer cannot say it is out of paper
)
"""``firmware_bridge/codecs/escpos.py``'s health rules and the printer driver's own."""
ID_CARD_READER = (
    "sam_fault",
    "sam_not_authorised",
    "reader_checksum_error",
    "reader_length_error",
    "reader_command_error",
    "reader_unauthorised_operation",
    "reader_error",
    "unexpected_status",
    "bad_length",
    "bad_checksum",
    "bad_read",
)
"""``firmware_bridge/drivers/id_reader.py``'s SAM faults and reader errors, ``codecs/sam.py``'s."""
REVIEW_PAD = ("key_stuck", "display_fault", "display_echo", "not_a_review_pad")
"""``firmware_bridge/drivers/review_pad.py`` and ``edge/agent/review_pad.py``."""

REASONS: dict[PeripheralKind, tuple[str, ...]] = {
    kind: (
        *ANY_PERIPHERAL,
        *{
            PeripheralKind.RECEIPT_PRINTER: PRINTER,
            PeripheralKind.A4_PRINTER: PRINTER,
            PeripheralKind.ID_CARD_READER: ID_CARD_READER,
            PeripheralKind.REVIEW_PAD: REVIEW_PAD,
        }.get(kind, ()),
        OTHER,
    )
    for kind in PeripheralKind
}
"""Every reason counted by name for each peripheral kind, ``other`` last."""
KNOWN_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (kind.value, reason) for kind, reasons in REASONS.items() for reason in reasons
)
"""Every (peripheral kind, reason) pair ``termfleet_peripheral_faults`` always lists."""
_KNOWN = {kind: frozenset(reasons) for kind, reasons in REASONS.items()}


def fault_reason(kind: PeripheralKind, reason: str) -> str:
    """The reason as counted: itself when known for ``kind``, else ``other``."""
    return reason if reason in _KNOWN.get(kind, ()) else OTHER
