"""The second-generation ID-card reader (二代证读卡器): SAM frames over USB bulk endpoints.

Many readers enumerate as a vendor-specific interface (class 0xFF) with a bulk OUT and a bulk IN
endpoint of 64-byte packets; the host writes a request frame and reads the answer, which may
span many packets (a card read is 1,295 bytes). Some readers are HID devices or USB serial
bridges instead and speak the same frames through reports or a tty; they need another
transport, not this driver.

Default id: several public host programs open their SAM reader at ``0400:c35a`` with libusb
and bulk transfers, so that id is recognised out of the box; readers of other makers are named
by the terminal's config (``UsbId.parse``).

Privacy: a read keeps only the outcome, the masked number (last four characters, see
``codecs.sam.mask_number``) and the card's end date. The name, address and photo are never
decoded, and the full number never leaves ``codecs.sam.summarise_text``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from edge.protocol import PeripheralKind, PeripheralState, PeripheralStatus
from firmware_bridge.codecs.sam import (
    Answer,
    Command,
    FrameReader,
    Status,
    decode_answer,
    encode_request,
    split_card_data,
    summarise_text,
)
from firmware_bridge.driver import DriverSpec, UsbDriver
from firmware_bridge.errors import FrameError, NoAnswerError, PeripheralError
from firmware_bridge.transport import UsbTransport
from firmware_bridge.usb_ids import UsbId

ENDPOINT_OUT = 0x02
ENDPOINT_IN = 0x81
PACKET_SIZE = 64
COMMAND_TIMEOUT_MS = 1000
READ_TIMEOUT_MS = 3000
"""A whole card read (find, select, read); readers take about a second for text and photo."""
DRAIN_TIMEOUT_MS = 50
"""How long to wait for stale packets after a failed exchange before sending the next one."""
MAX_DRAIN_PACKETS = 64

# SW3 values that say the SAM itself is unusable: the reader is faulty, not the card.
SAM_FAULTS = {
    Status.SAM_SELF_CHECK_FAILED: "sam_fault",
    Status.SAM_NOT_AUTHORISED: "sam_not_authorised",
}
# SW3 values about the card on the reader: a read outcome, not a reader fault.
CARD_FAILURES = {
    Status.FIND_FAILED: "no_card",
    Status.SELECT_FAILED: "select_failed",
    Status.READ_FAILED: "read_failed",
    Status.NO_SUCH_CONTENT: "read_failed",
    Status.CONTENT_LENGTH_ERROR: "read_failed",
    Status.RANDOM_NUMBER_FAILED: "read_failed",
    Status.CARD_REJECTED_SAM: "card_auth_failed",
    Status.SAM_REJECTED_CARD: "card_auth_failed",
    Status.VERIFICATION_FAILED: "card_auth_failed",
    Status.FINGERPRINT_VERIFICATION_FAILED: "card_auth_failed",
    Status.UNKNOWN_CARD_TYPE: "unknown_card_type",
}
# SW3 values where the reader refused what we sent: a fault of the link or of this driver.
READER_ERRORS = {
    Status.CHECKSUM_ERROR: "reader_checksum_error",
    Status.LENGTH_ERROR: "reader_length_error",
    Status.COMMAND_ERROR: "reader_command_error",
    Status.UNAUTHORISED_OPERATION: "reader_unauthorised_operation",
    Status.UNRECOGNISED_ERROR: "reader_error",
}


class ReadOutcome(enum.Enum):
    OK = "ok"
    NO_CARD = "no_card"
    FAILED = "failed"


@dataclass(frozen=True)
class CardRead:
    """How a card read went; ``valid_until`` None on an ok read means 长期 (valid for life).

    ``repr`` shows the outcome and reason only, so a read logged by mistake tells nothing of
    the card.
    """

    outcome: ReadOutcome
    reason: str = ""
    masked_number: str = field(default="", repr=False)
    valid_until: date | None = field(default=None, repr=False)


class IdCardReaderDriver(UsbDriver):
    """A SAM reader: its status, card reads and the commissioning self-test."""

    kind = PeripheralKind.ID_CARD_READER

    def __init__(
        self,
        transport: UsbTransport,
        name: str,
        *,
        today: Callable[[], date] = date.today,
    ) -> None:
        super().__init__(transport, name)
        self._today = today
        """The terminal's local date, for telling expired cards."""
        self._frames = FrameReader()
        self._stale = False
        """A past exchange failed: packets of its answer may still be on their way."""

    def status(self) -> PeripheralStatus:
        answer = self._exchange(Command.SAM_STATUS, _deadline(COMMAND_TIMEOUT_MS))
        if answer.sw3 in SAM_FAULTS:
            return self.report(PeripheralState.FAULT, SAM_FAULTS[Status(answer.sw3)])
        _expect(answer, Status.OK, Command.SAM_STATUS)
        return self.report(PeripheralState.OK)

    def read_card(self, timeout_ms: int = READ_TIMEOUT_MS) -> CardRead:
        """Find, select and read the card on the reader, all within ``timeout_ms``.

        A card problem is an outcome; a reader that cannot do its part raises PeripheralError.
        """
        deadline = _deadline(timeout_ms)
        steps = (
            (Command.FIND_CARD, Status.CARD_FOUND),
            (Command.SELECT_CARD, Status.OK),
            (Command.READ_TEXT_PHOTO, Status.OK),
        )
        answer = Answer(Status.OK)
        for command, success in steps:
            answer = self._exchange(command, deadline)
            if answer.sw3 in CARD_FAILURES:
                return _card_failure(CARD_FAILURES[Status(answer.sw3)])
            _expect(answer, success, command)
        return self._card_read(answer.data)

    def self_test(self) -> None:
        """Reset the SAM, read its id, then read the test card the technician placed.

        An expired test card passes: the reader read it, which is what is being tested.
        """
        deadline = _deadline(COMMAND_TIMEOUT_MS)
        _expect(self._exchange(Command.RESET_SAM, deadline), Status.OK, Command.RESET_SAM)
        deadline = _deadline(COMMAND_TIMEOUT_MS)
        _expect(self._exchange(Command.READ_SAM_ID, deadline), Status.OK, Command.READ_SAM_ID)
        read = self.read_card()
        if read.outcome is ReadOutcome.NO_CARD:
            msg = f"{self.name}: no card on the reader; place a test ID card on it and run again"
            raise PeripheralError(msg, reason="no_card")
        if read.outcome is ReadOutcome.FAILED and read.reason != "card_expired":
            msg = f"{self.name}: the test card could not be read ({read.reason})"
            raise PeripheralError(msg, reason=read.reason)

    # --- one exchange: request out, answer in --------------------------------------------

    def _exchange(self, command: Command, deadline: float) -> Answer:
        if self._stale:
            self._drain()
        self._stale = True  # until an answer arrives whole
        self.transport.write(ENDPOINT_OUT, encode_request(command), _remaining_ms(deadline))
        answer = decode_answer(self._read_frame(deadline))
        self._stale = False
        return answer

    def _read_frame(self, deadline: float) -> bytes:
        self._frames.reset()
        while True:
            try:
                packet = self.transport.read(ENDPOINT_IN, PACKET_SIZE, _remaining_ms(deadline))
            except NoAnswerError:
                raise self._silence() from None
            frames = self._frames.feed(packet)
            if frames:
                return frames[0]
            if len(packet) < PACKET_SIZE and self._frames.discarded and not self._frames.in_frame:
                # A short packet ends a USB transfer: the answer is over and held no frame.
                raise self._silence()
            if time.monotonic() >= deadline:
                raise self._silence()

    def _silence(self) -> PeripheralError:
        """The error for an answer that stopped coming: garbled, cut short, or none at all."""
        if self._frames.discarded:
            return FrameError(f"{self.name}: the reader's answer was garbled")
        if self._frames.in_frame:
            return FrameError(f"{self.name}: the reader's answer stopped half way")
        return NoAnswerError(f"{self.name}: the reader did not answer")

    def _drain(self) -> None:
        """Read and drop what a failed exchange left, so the next answer is read whole."""
        for _ in range(MAX_DRAIN_PACKETS):
            try:
                self.transport.read(ENDPOINT_IN, PACKET_SIZE, DRAIN_TIMEOUT_MS)
            except NoAnswerError:
                break
        self._frames.reset()
        self._stale = False

    def _card_read(self, data: bytes) -> CardRead:
        try:
            summary = summarise_text(split_card_data(data).text)
        except FrameError as exc:
            return _card_failure(exc.reason)
        expired = summary.valid_until is not None and summary.valid_until < self._today()
        return CardRead(
            ReadOutcome.FAILED if expired else ReadOutcome.OK,
            "card_expired" if expired else "",
            masked_number=summary.masked_number,
            valid_until=summary.valid_until,
        )


def _card_failure(reason: str) -> CardRead:
    if reason == "no_card":
        return CardRead(ReadOutcome.NO_CARD, reason)
    return CardRead(ReadOutcome.FAILED, reason)


def _expect(answer: Answer, success: Status, command: Command) -> None:
    """Raise PeripheralError, with the reason its status word gives, unless ``success``."""
    if answer.sw3 == success:
        return
    status = answer.status
    reason = "unexpected_status"
    if status in SAM_FAULTS:
        reason = SAM_FAULTS[status]
    elif status in READER_ERRORS:
        reason = READER_ERRORS[status]
    msg = f"ID-card reader answered {command.name} with status {answer.sw3:#04x}"
    raise PeripheralError(msg, reason=reason)


def _deadline(timeout_ms: int) -> float:
    return time.monotonic() + timeout_ms / 1000


def _remaining_ms(deadline: float) -> int:
    # pyusb reads 0 as "wait forever"; an expired deadline still gets one short try.
    return max(1, int((deadline - time.monotonic()) * 1000))


ID_CARD_READER = DriverSpec(
    kind=PeripheralKind.ID_CARD_READER,
    default_ids=(UsbId(0x0400, 0xC35A),),
    open=IdCardReaderDriver,
)
