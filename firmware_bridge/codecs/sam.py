"""The SAM frame protocol of second-generation ID-card readers (二代证读卡器). Pure.

The host talks to the reader's security module (SAM_A, 安全模块) in frames that GA 467 defines;
every maker's reader speaks them, over a serial line or USB bulk endpoints:

- host → reader: preamble ``AA AA AA 96 69``, length (2 bytes, big endian: the bytes after it,
  checksum included), command, parameter, data, checksum;
- reader → host: preamble, length, SW1 SW2 SW3 (SW3 is the status), data, checksum;
- checksum: XOR of every byte from the length field to the last data byte.

What this module relies on, as read in public host programs (the search tool's code corpus; no
code was taken from them):

- frame layout, XOR checksum and the command bytes (reset ``10 FF``, SAM status ``11 FF``,
  SAM id ``12 FF``, find ``20 01``, select ``20 02``, read ``30 01``): C structs and fixed
  command arrays in several reader programs, e.g. ``cmd_get_status = AA AA AA 96 69 00 03 11 FF
  ED`` in a D-Bus reader service, whose checksum (00^03^11^FF = ED) checks out;
- answers as they appear on the wire: SAM ok ``…00 04 00 00 90 94``, card found ``…00 08 00 00
  9F 00 00 00 00 97``, card selected ``…00 0C 00 00 90`` + 8 bytes, read ``…05 08 00 00 90 01 00
  04 00`` + 256 text bytes + 1024 photo bytes + checksum (1,295 bytes, text length and photo
  length as 2-byte big-endian fields);
- the SW3 table (0x90 成功 … 0x66 SAM_A 没经过授权): the error table of the makers' SDK headers
  (``sdtapi``), which several programs copy; 0x01 to 0x09 in that table are the host library's own
  codes (port, timeout) and never appear in a frame;
- the 256-byte text block (GB 13000 UCS-2, little endian; name 30, sex 2, nation 4, birth 16,
  address 70, number 36, authority 30, valid from 16, valid to 16, reserved 36), padded with
  spaces; a card valid for life says ``长期`` as its end date.

The photo is WLT, compressed and encrypted; it is length-checked and never decoded. Only
``summarise_text`` looks inside the text, and it returns the masked number and the end date.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from edge.national_id import check_character
from firmware_bridge.errors import FrameError

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
HEADER_LENGTH = len(PREAMBLE) + 2
STATUS_LENGTH = 3
"""SW1 SW2 SW3, the first bytes of every answer's body."""
MIN_LENGTH = 3
"""The shortest length field: a request's command, parameter and checksum."""
MAX_LENGTH = 4096
"""Above every answer GA 467 defines (text + photo + fingerprint is 2,314 bytes)."""
TEXT_LENGTH = 256
PHOTO_LENGTH = 1024
FINGERPRINT_LENGTH = 1024
MASKED_CHARACTERS = 14
"""How many of the number's 18 characters ``mask_number`` hides: all but the last four."""

_NUMBER = re.compile(r"^[0-9]{17}[0-9X]$")
_DATE = re.compile(r"^[0-9]{8}$")
_LONG_TERM = "长期"
_PAD = " "


class Command(enum.Enum):
    """A command the host sends, as its (command, parameter) bytes."""

    RESET_SAM = (0x10, 0xFF)
    SAM_STATUS = (0x11, 0xFF)
    READ_SAM_ID = (0x12, 0xFF)
    FIND_CARD = (0x20, 0x01)
    """寻找居民身份证: answered with CARD_FOUND or FIND_FAILED."""
    SELECT_CARD = (0x20, 0x02)
    READ_TEXT_PHOTO = (0x30, 0x01)
    """读机读文字信息和相片信息."""
    READ_TEXT_PHOTO_FINGERPRINT = (0x30, 0x10)


class Status(enum.IntEnum):
    """SW3 of an answer: how the reader's SAM_A did."""

    OK = 0x90  # 操作成功
    NO_SUCH_CONTENT = 0x91  # 居民身份证中无此项内容
    CARD_FOUND = 0x9F  # 寻找居民身份证成功
    CHECKSUM_ERROR = 0x10  # 接收业务终端数据的校验和错
    LENGTH_ERROR = 0x11  # 接收业务终端数据的长度错
    COMMAND_ERROR = 0x21  # 接收业务终端的命令错误
    UNAUTHORISED_OPERATION = 0x23  # 越权操作
    UNRECOGNISED_ERROR = 0x24  # 无法识别的错误
    CARD_REJECTED_SAM = 0x31  # 居民身份证认证 SAM_A 失败
    SAM_REJECTED_CARD = 0x32  # SAM_A 认证居民身份证失败
    VERIFICATION_FAILED = 0x33  # 信息验证失败
    FINGERPRINT_VERIFICATION_FAILED = 0x37  # 指纹信息验证错误
    CONTENT_LENGTH_ERROR = 0x3F  # 信息长度错误
    UNKNOWN_CARD_TYPE = 0x40  # 无法识别的居民身份证类型
    READ_FAILED = 0x41  # 读居民身份证操作失败
    RANDOM_NUMBER_FAILED = 0x47  # 取随机数失败
    SAM_SELF_CHECK_FAILED = 0x60  # SAM_A 自检失败, 不能接收命令
    SAM_NOT_AUTHORISED = 0x66  # SAM_A 没经过授权, 无法使用
    FIND_FAILED = 0x80  # 寻找居民身份证失败 (no card on the reader)
    SELECT_FAILED = 0x81  # 选取居民身份证失败


@dataclass(frozen=True)
class Request:
    """A host → reader frame; ``code`` and ``parameter`` may name no known command."""

    code: int
    parameter: int
    data: bytes = b""

    @property
    def command(self) -> Command | None:
        try:
            return Command((self.code, self.parameter))
        except ValueError:
            return None


@dataclass(frozen=True)
class Answer:
    """A reader → host frame; ``sw3`` may be a status this module does not know."""

    sw3: int
    data: bytes = b""
    sw1: int = 0
    sw2: int = 0

    @property
    def status(self) -> Status | None:
        try:
            return Status(self.sw3)
        except ValueError:
            return None


def checksum(data: bytes) -> int:
    """XOR of ``data``: the frame's length field and body."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def wrap(body: bytes) -> bytes:
    """A whole frame around ``body`` (command or status bytes and data)."""
    length = (len(body) + 1).to_bytes(2, "big")
    return PREAMBLE + length + body + bytes([checksum(length + body)])


def unwrap(frame: bytes) -> bytes:
    """The body of one whole frame; FrameError if preamble, length or checksum is wrong."""
    if not frame.startswith(PREAMBLE) or len(frame) < HEADER_LENGTH:
        msg = "SAM frame does not start with the preamble AA AA AA 96 69"
        raise FrameError(msg)
    length = int.from_bytes(frame[len(PREAMBLE) : HEADER_LENGTH], "big")
    if not MIN_LENGTH <= length <= MAX_LENGTH or len(frame) != HEADER_LENGTH + length:
        msg = f"SAM frame of {len(frame)} bytes says length {length}"
        raise FrameError(msg, reason="bad_length")
    if checksum(frame[len(PREAMBLE) : -1]) != frame[-1]:
        msg = "SAM frame checksum does not match"
        raise FrameError(msg, reason="bad_checksum")
    return frame[HEADER_LENGTH:-1]


def encode_request(command: Command, data: bytes = b"") -> bytes:
    code, parameter = command.value
    return wrap(bytes([code, parameter]) + data)


def decode_request(frame: bytes) -> Request:
    body = unwrap(frame)
    return Request(body[0], body[1], body[2:])


def encode_answer(answer: Answer) -> bytes:
    return wrap(bytes([answer.sw1, answer.sw2, answer.sw3]) + answer.data)


def decode_answer(frame: bytes) -> Answer:
    body = unwrap(frame)
    if len(body) < STATUS_LENGTH:
        msg = f"SAM answer of {len(body)} body bytes has no SW1 SW2 SW3"
        raise FrameError(msg)
    return Answer(sw1=body[0], sw2=body[1], sw3=body[2], data=body[3:])


class FrameReader:
    """Reassembles frames from bytes cut into packets anywhere; skips garbage to a preamble.

    ``feed`` returns the whole, checked frames completed so far. A frame that arrived whole but
    is corrupt (checksum, impossible length) raises FrameError; it is dropped, reading goes on at
    the next preamble, and frames completed before it in the same call come with the next call.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._ready: list[bytes] = []
        self.discarded = 0
        """Bytes skipped as garbage since the reader was made or reset."""

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started (its preamble arrived) and waits for its rest."""
        return self._buffer.startswith(PREAMBLE)

    def reset(self) -> None:
        self._buffer.clear()
        self._ready.clear()
        self.discarded = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames, self._ready = self._ready, []
        while (frame := self._next_frame(frames)) is not None:
            frames.append(frame)
        return frames

    def _next_frame(self, frames: list[bytes]) -> bytes | None:
        self._skip_to_preamble()
        if len(self._buffer) < HEADER_LENGTH:
            return None
        length = int.from_bytes(self._buffer[len(PREAMBLE) : HEADER_LENGTH], "big")
        if len(self._buffer) < HEADER_LENGTH + length and MIN_LENGTH <= length <= MAX_LENGTH:
            return None
        frame = bytes(self._buffer[: HEADER_LENGTH + length])
        try:
            unwrap(frame)
        except FrameError:
            # Drop only the preamble: the "frame" may have been garbage that looked like a
            # start, and a real frame may begin inside it.
            del self._buffer[: len(PREAMBLE)]
            self.discarded += len(PREAMBLE)
            self._ready = frames
            raise
        del self._buffer[: len(frame)]
        return frame

    def _skip_to_preamble(self) -> None:
        start = self._buffer.find(PREAMBLE)
        if start < 0:
            # Keep a tail that may be the first bytes of a preamble cut by a packet boundary.
            start = len(self._buffer)
            for tail in range(len(PREAMBLE) - 1, 0, -1):
                if self._buffer.endswith(PREAMBLE[:tail]):
                    start -= tail
                    break
        self.discarded += start
        del self._buffer[:start]


def packets(frame: bytes, size: int) -> list[bytes]:
    """``frame`` cut into USB packets of at most ``size`` bytes, as a reader sends it."""
    return [frame[i : i + size] for i in range(0, len(frame), size)]


# --- the card's data ------------------------------------------------------------------------


class TextField(enum.Enum):
    """A field of the 256-byte text block: (offset, width in bytes), UCS-2 LE, space padded."""

    NAME = (0, 30)
    SEX = (30, 2)
    """GB/T 2261.1 code: 1 male, 2 female."""
    NATION = (32, 4)
    """GB/T 3304 code: 01 汉 …"""
    BIRTH_DATE = (36, 16)
    ADDRESS = (52, 70)
    ID_NUMBER = (122, 36)
    AUTHORITY = (158, 30)
    """签发机关, the issuing police office."""
    VALID_FROM = (188, 16)
    VALID_TO = (204, 16)
    """YYYYMMDD, or 长期 for a card valid for life."""
    RESERVED = (220, 36)

    @property
    def span(self) -> slice:
        offset, width = self.value
        return slice(offset, offset + width)


@dataclass(frozen=True, repr=False)
class CardData:
    """The data of a read answer split into its blocks; never logged, never kept."""

    text: bytes
    photo: bytes
    fingerprint: bytes = b""


@dataclass(frozen=True)
class CardSummary:
    """What termfleet keeps of a card: its masked number and its end date (None: 长期)."""

    masked_number: str
    valid_until: date | None


def encode_card_data(text: bytes, photo: bytes, fingerprint: bytes | None = None) -> bytes:
    """A read answer's data: the block lengths, then the blocks (fingerprint for 30 10 only)."""
    blocks = (text, photo) if fingerprint is None else (text, photo, fingerprint)
    lengths = b"".join(len(block).to_bytes(2, "big") for block in blocks)
    return lengths + b"".join(blocks)


def split_card_data(data: bytes, *, fingerprint: bool = False) -> CardData:
    """The blocks of a read answer's data; FrameError (reason bad_read) for a wrong layout."""
    count = 3 if fingerprint else 2
    if len(data) < 2 * count:
        msg = "card data shorter than its length fields"
        raise FrameError(msg, reason="bad_read")
    lengths = [int.from_bytes(data[2 * i : 2 * i + 2], "big") for i in range(count)]
    if len(data) != 2 * count + sum(lengths):
        msg = "card data does not match its length fields"
        raise FrameError(msg, reason="bad_read")
    if lengths[0] != TEXT_LENGTH or lengths[1] != PHOTO_LENGTH:
        msg = f"card blocks of {lengths[:2]} bytes, not 256 and 1024"
        raise FrameError(msg, reason="bad_read")
    text_end = 2 * count + TEXT_LENGTH
    photo_end = text_end + PHOTO_LENGTH
    return CardData(data[2 * count : text_end], data[text_end:photo_end], data[photo_end:])


def encode_text(values: Mapping[TextField, str]) -> bytes:
    """A 256-byte text block; fields not given are blank. ValueError if a value does not fit."""
    block = bytearray(_PAD.encode("utf-16-le") * (TEXT_LENGTH // 2))
    for field, value in values.items():
        encoded = value.encode("utf-16-le")
        width = field.value[1]
        if len(encoded) > width:
            msg = f"{field.name} takes {width // 2} characters, not {len(value)}"
            raise ValueError(msg)
        block[field.span] = encoded + _PAD.encode("utf-16-le") * ((width - len(encoded)) // 2)
    return bytes(block)


def summarise_text(text: bytes) -> CardSummary:
    """The masked number and end date of a text block; FrameError (bad_read) if either is bad.

    The full number exists only inside this function: a number whose GB 11643 check character
    is wrong, or a date that is no date, means the read was corrupted.
    """
    if len(text) != TEXT_LENGTH:
        msg = f"card text of {len(text)} bytes, not 256"
        raise FrameError(msg, reason="bad_read")
    number = _field(text, TextField.ID_NUMBER)
    if not _NUMBER.match(number) or check_character(number[:17]) != number[17]:
        msg = "card number fails its GB 11643 check character"
        raise FrameError(msg, reason="bad_read")
    return CardSummary(mask_number(number), _end_date(_field(text, TextField.VALID_TO)))


def mask_number(number: str) -> str:
    """``**************123X``: only the last four characters (尾号), as services show them."""
    return "*" * MASKED_CHARACTERS + number[MASKED_CHARACTERS:]


def _field(text: bytes, field: TextField) -> str:
    try:
        return text[field.span].decode("utf-16-le").rstrip(_PAD + "\0")
    except UnicodeDecodeError:
        msg = f"card {field.name} is not UCS-2 text"
        raise FrameError(msg, reason="bad_read") from None


def _end_date(value: str) -> date | None:
    if value == _LONG_TERM:
        return None
    if _DATE.match(value):
        try:
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            pass
    msg = "card end date is neither YYYYMMDD nor 长期"
    raise FrameError(msg, reason="bad_read")
