"""A virtual second-generation ID-card reader that speaks the SAM frames of ``codecs.sam``.

It answers on bulk IN in 64-byte packets as a USB reader does. Tests and the demo place and
remove synthetic cards, break the SAM, and make the next answer carry an error status or a
wrong checksum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from firmware_bridge.codecs.sam import (
    PHOTO_LENGTH,
    Answer,
    Command,
    FrameReader,
    Request,
    Status,
    TextField,
    decode_request,
    encode_answer,
    encode_card_data,
    encode_text,
    packets,
)
from firmware_bridge.errors import FrameError

from .device import TRANSFER_BULK, StallRequest, VirtualDevice, VirtualEndpoint, VirtualInterface

ENDPOINT_OUT = 0x02
ENDPOINT_IN = 0x81
PACKET_SIZE = 64
VENDOR_SPECIFIC = 0xFF
SAM_ID = bytes.fromhex("0501000020250101000000000000a001")
"""16 bytes, as SDT_GetSAMID returns; synthetic."""


@dataclass(frozen=True)
class VirtualIdCard:
    """A synthetic card: its number has a valid check character but no real region (999999)."""

    name: str = "测试样卡"
    sex: str = "1"
    nation: str = "01"
    birth_date: str = "19700101"
    address: str = "虚拟省虚拟市测试路1号"
    id_number: str = "99999919700101005X"
    authority: str = "虚拟市公安局"
    valid_from: str = "20200101"
    valid_to: str = "20400101"
    """YYYYMMDD, or 长期."""
    photo: bytes = bytes(PHOTO_LENGTH)

    def text(self) -> bytes:
        """The card's 256-byte text block."""
        return encode_text(
            {
                TextField.NAME: self.name,
                TextField.SEX: self.sex,
                TextField.NATION: self.nation,
                TextField.BIRTH_DATE: self.birth_date,
                TextField.ADDRESS: self.address,
                TextField.ID_NUMBER: self.id_number,
                TextField.AUTHORITY: self.authority,
                TextField.VALID_FROM: self.valid_from,
                TextField.VALID_TO: self.valid_to,
            }
        )


SAMPLE_CARD = VirtualIdCard()


class VirtualIdCardReader(VirtualDevice):
    """A USB SAM reader with an optional card on it."""

    vendor_id: ClassVar[int] = 0x0400
    product_id: ClassVar[int] = 0xC35A
    manufacturer: ClassVar[str] = "termfleet"
    product: ClassVar[str] = "virtual ID card reader"
    interfaces: ClassVar[tuple[VirtualInterface, ...]] = (
        VirtualInterface(
            number=0,
            interface_class=VENDOR_SPECIFIC,
            endpoints=(
                VirtualEndpoint(ENDPOINT_OUT, TRANSFER_BULK, PACKET_SIZE),
                VirtualEndpoint(ENDPOINT_IN, TRANSFER_BULK, PACKET_SIZE),
            ),
        ),
    )

    def __init__(
        self,
        *,
        card: VirtualIdCard | None = None,
        packet_size: int = PACKET_SIZE,
        serial: str = "SIM0001",
        seed: int = 0,
    ) -> None:
        super().__init__(serial=serial, seed=seed)
        self.card = card
        self.packet_size = packet_size
        """Answers are cut into packets of this size; tests cut them smaller."""
        self.requests: list[Request] = []
        """Every request the host sent, in order."""
        self._input = FrameReader()
        self._selected = False
        self._sam_status: Status | None = None
        self._forced: list[tuple[Command | None, int]] = []
        self._corrupt_next = False

    # --- what tests call ---------------------------------------------------------------------

    def place_card(self, card: VirtualIdCard = SAMPLE_CARD) -> None:
        self.card = card
        self._selected = False

    def remove_card(self) -> None:
        self.card = None
        self._selected = False

    def break_sam(self, status: Status = Status.SAM_SELF_CHECK_FAILED) -> None:
        """Every answer from now on carries ``status`` (0x60 self-check failed, 0x66 …)."""
        self._sam_status = status

    def repair_sam(self) -> None:
        self._sam_status = None

    def answer_with(self, sw3: int, *, command: Command | None = None) -> None:
        """The next answer (to ``command``, or to any) carries ``sw3`` and no data."""
        self._forced.append((command, sw3))

    def corrupt_next_answer(self) -> None:
        """The next answer goes out with a wrong checksum."""
        self._corrupt_next = True

    # --- the device's side ---------------------------------------------------------------

    def reset(self) -> None:
        self._input.reset()
        self._selected = False

    def handle_out(self, endpoint: int, data: bytes) -> None:
        if endpoint != ENDPOINT_OUT:
            raise StallRequest
        try:
            frames = self._input.feed(data)
        except FrameError as exc:
            # GA 467: the SAM reports a request it could not take by its status word.
            bad = Status.CHECKSUM_ERROR if exc.reason == "bad_checksum" else Status.LENGTH_ERROR
            self._send(Answer(bad))
            return
        for frame in frames:
            request = decode_request(frame)
            self.requests.append(request)
            self._send(self._answer(request))

    def _answer(self, request: Request) -> Answer:
        command = request.command
        for index, (wanted, sw3) in enumerate(self._forced):
            if wanted is None or wanted is command:
                del self._forced[index]
                return Answer(sw3)
        if self._sam_status is not None:
            return Answer(self._sam_status)
        if command is None:
            return Answer(Status.COMMAND_ERROR)
        return self._answer_command(command)

    def _answer_command(self, command: Command) -> Answer:
        if command is Command.RESET_SAM:
            self._selected = False
            return Answer(Status.OK)
        if command is Command.SAM_STATUS:
            return Answer(Status.OK)
        if command is Command.READ_SAM_ID:
            return Answer(Status.OK, SAM_ID)
        return self._answer_card_command(command)

    def _answer_card_command(self, command: Command) -> Answer:
        if command is Command.FIND_CARD:
            found = self.card is not None
            return Answer(Status.CARD_FOUND, bytes(4)) if found else Answer(Status.FIND_FAILED)
        if command is Command.SELECT_CARD:
            self._selected = self.card is not None
            return Answer(Status.OK, bytes(8)) if self._selected else Answer(Status.SELECT_FAILED)
        if self.card is None or not self._selected:
            return Answer(Status.READ_FAILED)
        fingerprint = b"" if command is Command.READ_TEXT_PHOTO_FINGERPRINT else None
        return Answer(Status.OK, encode_card_data(self.card.text(), self.card.photo, fingerprint))

    def _send(self, answer: Answer) -> None:
        frame = encode_answer(answer)
        if self._corrupt_next:
            self._corrupt_next = False
            frame = frame[:-1] + bytes([frame[-1] ^ 0xFF])
        for packet in packets(frame, self.packet_size):
            self.send_in(ENDPOINT_IN, packet)
