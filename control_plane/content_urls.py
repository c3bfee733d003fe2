"""The download URLs terminals are given for packages, and what a request to one asks for. Pure.

A terminal has no API token: the control plane hands it a URL that carries its own proof,

    {base}/content/v1/packages/{sha256}.tfpkg?device=ID&expires=UNIX&sig=HEX

where ``sig`` is HMAC-SHA256 over the sha256, the device and the expiry joined by newlines, with
a key derived from the provisioning secret (``url_key``), in hex, cut to ``SIGNATURE_CHARS``.
The URL is good for one package, one device and until one moment; every replica that holds the
secret checks it without a database. ``byte_range`` reads the Range and If-Range headers of a
request for a package (RFC 9110 section 14), so that a cut download resumes where it stopped.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from dataclasses import dataclass

from edge.protocol.common import ID_PATTERN

URL_KEY_CONTEXT = b"termfleet content url v1"
"""What the URL key is derived for: the secret's other uses (broker passwords) never meet it."""
SIGNATURE_CHARS = 32
"""128 bits of the HMAC in hex: far beyond guessing within a URL's lifetime."""
DOWNLOAD_PREFIX = "/content/v1/packages/"
PACKAGE_SUFFIX = ".tfpkg"
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
EXPIRES = re.compile(r"[0-9]{1,12}")
"""Whole seconds since 1970, without a sign or a leading +: one text per moment would be nicer,
but the signature covers the text as sent, so another spelling of the same moment just fails."""
SIGNATURE = re.compile(rf"[0-9a-f]{{{SIGNATURE_CHARS}}}")
DEVICE_ID = re.compile(ID_PATTERN)
MAX_RANGE_NUMBER_DIGITS = 18
"""More digits than any file's size has: a longer position lies past the end of any package."""
PAST_ANY_END = 1_000_000_000_000_000_000
"""The position a longer number stands for: 10 ** MAX_RANGE_NUMBER_DIGITS."""
_SINGLE_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII | re.IGNORECASE)


class UrlRefusal(enum.StrEnum):
    """Why a download URL is refused (HTTP 403); terminals ask for a new URL on ``expired``."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"


class ContentUrlError(ValueError):
    """A download URL or byte range that cannot be made or served; ``reason`` says which."""

    reason = "invalid"


class UrlArgumentError(ContentUrlError):
    """A package hash, device id or expiry that no URL may carry."""

    reason = "invalid_argument"


class UnsatisfiableRangeError(ContentUrlError):
    """A Range that selects no byte of the package (HTTP 416)."""

    reason = "unsatisfiable"


def url_key(secret: bytes) -> bytes:
    """The key download URLs are signed with, derived from the provisioning secret."""
    return hmac.new(secret, URL_KEY_CONTEXT, hashlib.sha256).digest()


def download_path(sha256: str) -> str:
    return f"{DOWNLOAD_PREFIX}{sha256}{PACKAGE_SUFFIX}"


def url_signature(sha256: str, device: str, expires: str, key: bytes) -> str:
    """The ``sig`` of a URL for ``sha256``, ``device`` and ``expires`` (its text in the URL)."""
    message = f"{sha256}\n{device}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:SIGNATURE_CHARS]


def sign_url(base_url: str, sha256: str, device_id: str, expires: int, key: bytes) -> str:
    """The URL at which ``device_id`` may download package ``sha256`` until ``expires`` (UNIX)."""
    if not SHA256_HEX.fullmatch(sha256):
        msg = f"{sha256!r} is no package's sha256 (64 lowercase hex digits)"
        raise UrlArgumentError(msg)
    if not DEVICE_ID.fullmatch(device_id):
        msg = f"{device_id!r} is no device id"
        raise UrlArgumentError(msg)
    if not EXPIRES.fullmatch(str(expires)):
        msg = f"expires must be a UNIX time in whole seconds, not {expires!r}"
        raise UrlArgumentError(msg)
    # Every part was checked above to hold only characters a query leaves as they are
    # (a device id is A-Z a-z 0-9 _ . -), so no quoting: a rollout signs one URL per device.
    sig = url_signature(sha256, device_id, str(expires), key)
    query = f"device={device_id}&expires={expires}&sig={sig}"
    return f"{base_url.rstrip('/')}{download_path(sha256)}?{query}"


def check(  # noqa: PLR0913, PLR0917 - the URL's four parts, the key and the clock, as named
    sha256: str, device: str, expires: str, sig: str, key: bytes, now: float
) -> UrlRefusal | None:
    """None when the URL's parts were signed with ``key`` and it has not expired, else why not.

    The signature is checked before the expiry, so that only a URL this server made learns
    that it expired; the comparison takes the same time wherever the texts differ.
    """
    well_formed = (
        SHA256_HEX.fullmatch(sha256)
        and DEVICE_ID.fullmatch(device)
        and EXPIRES.fullmatch(expires)
        and SIGNATURE.fullmatch(sig)
    )
    if not well_formed:
        return UrlRefusal.MALFORMED
    if not hmac.compare_digest(url_signature(sha256, device, expires, key), sig):
        return UrlRefusal.BAD_SIGNATURE
    if int(expires) <= now:
        return UrlRefusal.EXPIRED
    return None


# --- byte ranges ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ByteRange:
    """The bytes ``start`` up to, not including, ``stop`` of a file of ``size`` bytes."""

    start: int
    stop: int
    size: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.stop - 1}/{self.size}"


def byte_range(  # noqa: PLR0911 - one return per case of RFC 9110's rules
    range_header: str | None, if_range: str | None, etag: str, size: int
) -> ByteRange | None:
    """The part of a ``size``-byte file a request asks for; None: the whole file (200).

    Follows RFC 9110: a Range whose If-Range is not this file's strong ``etag`` is ignored (the
    file changed, so the whole of it is sent), as is a Range this server does not serve (another
    unit, several ranges, a malformed one). UnsatisfiableRangeError when the range starts at or
    past the end, or is an empty suffix (HTTP 416).
    """
    if range_header is None:
        return None
    if if_range is not None and if_range.strip() != etag:
        return None  # a date, a weak tag or another file's tag: only a strong match resumes
    found = _SINGLE_RANGE.fullmatch(range_header.strip())
    if found is None:
        return None
    first, last = found.groups()
    if first:
        start = _position(first)
        stop = _position(last) + 1 if last else size
        if last and stop <= start:
            return None  # last-pos before first-pos: an invalid range, ignored (14.1.1)
        if start >= size:
            msg = f"the range starts at byte {start}; the package has {size} bytes"
            raise UnsatisfiableRangeError(msg)
        return ByteRange(start, min(stop, size), size)
    if not last:
        return None  # "bytes=-": neither position
    suffix = _position(last)
    if suffix == 0 or size == 0:
        msg = f"an empty suffix of a {size}-byte package"
        raise UnsatisfiableRangeError(msg)
    return ByteRange(max(size - suffix, 0), size, size)


def _position(digits: str) -> int:
    # int() of thousands of digits is slow (and refused past 4300): cap before converting.
    stripped = digits.lstrip("0") or "0"
    if len(stripped) > MAX_RANGE_NUMBER_DIGITS:
        return PAST_ANY_END
    return int(stripped)
