"""A sequential reader of the tar subset packages use: POSIX ustar headers, pax path and size.

Strict where tarfile is lenient: tarfile takes a cut-off or garbled header after the first for
the end of the archive, so a truncated download or trailing data would pass unseen. Here any
short read is ``truncated``, anything else unexpected ``malformed``, and the archive must end
with its end-of-archive marker and zero padding to a whole record, then the end of the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, NoReturn

from .manifest import PackageError, PackageReason

BLOCK_BYTES = 512
RECORD_BYTES = 20 * BLOCK_BYTES
"""tar's default blocking factor: writers pad the archive to a whole record."""

CHUNK_BYTES = 1024 * 1024
MAX_PAX_BYTES = 8192
"""A pax header's size: it holds a path of at most 255 bytes and a few numbers."""

_ZERO_BLOCK = bytes(BLOCK_BYTES)
_POSIX_MAGIC = b"ustar\x0000"
_REGULAR_TYPES = (b"0", b"\x00")
_PAX_TYPE = b"x"
_OCTAL = re.compile(rb" *([0-7]+) *")
_CHECKSUM = re.compile(rb"([0-7]{6})\x00 ")
_PAX_LENGTH = re.compile(rb"[1-9][0-9]*")
_DECIMAL = re.compile(r"[0-9]+")
_CHECKSUM_FIELD = slice(148, 156)
_CHECKSUM_SPACES = 8 * ord(" ")


@dataclass(frozen=True, slots=True)
class Member:
    """A regular file's name and size as its headers state them: to be checked, not trusted."""

    name: str
    size: int


class TarReader:
    """Reads members in order from ``stream``; PackageError for anything outside the subset."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._offset = 0

    def next_member(self) -> Member | None:
        """The next regular file, its data to be read next; None at the end (checked to EOF)."""
        pax: dict[str, str] | None = None
        while True:
            header = self._read(BLOCK_BYTES)
            if header == _ZERO_BLOCK:
                if pax is not None:
                    _malformed("a pax header with no member after it")
                self._check_end()
                return None
            typeflag, name, size = _parse_header(header)
            if typeflag == _PAX_TYPE and pax is None:
                if size > MAX_PAX_BYTES:
                    _malformed(f"a pax header of {size} bytes")
                pax = _parse_pax(self.read_all(size))
                continue
            if typeflag not in _REGULAR_TYPES:
                _malformed(f"member {name!r} is not a regular file (type {typeflag!r})")
            if pax is None:
                return Member(name, size)
            return Member(pax.get("path", name), _pax_size(pax, size))

    def read_all(self, size: int) -> bytes:
        """The current member's data, of ``size`` bytes (small members only)."""
        chunks: list[bytes] = []
        self.copy(size, chunks.append)
        return b"".join(chunks)

    def copy(self, size: int, sink: Callable[[bytes], object]) -> None:
        """Pass the current member's ``size`` bytes of data to ``sink`` in chunks."""
        remaining = size
        while remaining:
            chunk = self._read(min(remaining, CHUNK_BYTES))
            sink(chunk)
            remaining -= len(chunk)
        if any(self._read(-size % BLOCK_BYTES)):
            _malformed("a member's padding is not zeros")

    def _check_end(self) -> None:
        if self._read(BLOCK_BYTES) != _ZERO_BLOCK:
            _malformed("data after a zero block: the end-of-archive marker is two")
        if any(self._read(-self._offset % RECORD_BYTES)):
            _malformed("data after the end-of-archive marker")
        if self._stream.read(1):
            _malformed("data after the archive's last record")

    def _read(self, size: int) -> bytes:
        data = self._stream.read(size)
        self._offset += len(data)
        if len(data) < size:
            msg = f"the file ends at byte {self._offset}, inside the archive"
            raise PackageError(PackageReason.TRUNCATED, msg)
        return data


def _parse_header(header: bytes) -> tuple[bytes, str, int]:
    """The type flag, name and size of a ustar header whose magic and checksum are right."""
    if header[257:265] != _POSIX_MAGIC:
        _malformed("not a POSIX tar header")
    # Exactly as POSIX writers put it, so that no byte of a header escapes the checksum.
    checksum = _CHECKSUM.fullmatch(header[_CHECKSUM_FIELD])
    unsigned_sum = sum(header) - sum(header[_CHECKSUM_FIELD]) + _CHECKSUM_SPACES
    if checksum is None or int(checksum[1], 8) != unsigned_sum:
        _malformed("a tar header's checksum is wrong")
    name = _text(header[0:100])
    prefix = _text(header[345:500])
    return header[156:157], f"{prefix}/{name}" if prefix else name, _octal(header[124:136], "size")


def _octal(field: bytes, what: str) -> int:
    match = _OCTAL.fullmatch(field.split(b"\x00", 1)[0])
    if match is None:
        _malformed(f"a tar header's {what} is no octal number")
    return int(match[1], 8)


def _text(field: bytes) -> str:
    return _utf8(field.split(b"\x00", 1)[0])


def _utf8(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        _malformed("a name in a tar header is not UTF-8")


def _parse_pax(data: bytes) -> dict[str, str]:
    """The records of a pax extended header: ``<length> <key>=<value>`` and a newline, each."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        if space < 0 or not _PAX_LENGTH.fullmatch(data[position:space]):
            _malformed("a pax record without its length")
        end = position + int(data[position:space])
        key, equals, value = data[space + 1 : end - 1].partition(b"=")
        if end > len(data) or data[end - 1 : end] != b"\n" or not equals:
            _malformed("a pax record that does not end where its length says")
        records[_utf8(key)] = _utf8(value)
        position = end
    return records


def _pax_size(pax: dict[str, str], header_size: int) -> int:
    size = pax.get("size")
    if size is None:
        return header_size
    if not _DECIMAL.fullmatch(size):
        _malformed("a pax size that is no number")
    return int(size)


def _malformed(problem: str) -> NoReturn:
    raise PackageError(PackageReason.MALFORMED, problem)
