"""Claim codes (认领码) and enrollment links: what a technician types or scans to enroll a terminal.

A claim code is 80 random bits in Crockford base32 (16 symbols) plus Crockford's mod-37 check
symbol, shown as ``XXXX-XXXX-XXXX-XXXX-C``. The check symbol catches every single mistyped
symbol and every swap of two neighbouring symbols before the terminal asks the claim service,
so a typo gets a clear local answer instead of a refusal that looks like a bad code.

The enrollment link, ``termfleet://enroll?code=…&server=…&secret=…``, carries the code, the
broker and the shared claim password in one QR code. Pure stdlib: part of the wire contract.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import unicodedata
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

DATA_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford base32: no I, L, O (they read as 1, 1, 0) and no U (an accidental obscenity)."""
CHECK_ALPHABET = DATA_ALPHABET + "*~$=U"
"""The check symbol's 37 values: Crockford's extra five after the data alphabet."""
CHECK_MODULUS = len(CHECK_ALPHABET)
"""37 is prime and does not divide 32 or 31, so one changed symbol (a multiple of a power of 32)
and one swap of neighbours (31 times a power of 32 times a difference) both change the residue."""
DATA_SYMBOLS = 16
CODE_BITS = 5 * DATA_SYMBOLS
CODE_SYMBOLS = DATA_SYMBOLS + 1
GROUP_SIZE = 4
PREFIX_SYMBOLS = 4
"""As much of a code as listings and logs may show: 20 bits, far too few to guess the rest."""

LINK_SCHEME = "termfleet"
LINK_ACTION = "enroll"
SERVER_SCHEMES = ("mqtt", "mqtts")
MAX_INPUT_CHARS = 4096
"""Longer input is refused before parsing: no real link or code comes near it."""

# Crockford: read O as 0 and I, L as 1, since people type what they think they see.
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
# Separators a technician or a document may put between groups (hyphen, dashes, minus sign).
_SEPARATORS = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
_DATA_VALUES = {symbol: value for value, symbol in enumerate(DATA_ALPHABET)}


class ClaimCodeError(ValueError):
    """A claim code or enrollment link that cannot be used; the message is for the technician."""


@dataclasses.dataclass(frozen=True, slots=True)
class ClaimInput:
    """What the technician gave ``termfleet agent enroll``: a code, and from a link its server."""

    code: str
    """The canonical 17-symbol code (no separators, upper case, check symbol last)."""
    server: str | None = None
    """The broker as an ``mqtt://`` or ``mqtts://`` URL, when the input was a link that has one."""
    claim_password: str | None = None
    """The shared claim password, when the input was a link that has one."""


def new_code(randbits: Callable[[int], int] = secrets.randbits) -> str:
    """A fresh claim code, formatted for display. ``randbits`` is injectable for tests only."""
    value = randbits(CODE_BITS)
    if not 0 <= value < 1 << CODE_BITS:
        msg = f"randbits({CODE_BITS}) returned {value}, outside {CODE_BITS} bits"
        raise ValueError(msg)
    data = "".join(
        DATA_ALPHABET[(value >> (5 * shift)) & 0x1F] for shift in reversed(range(DATA_SYMBOLS))
    )
    return format_code(data + _check_symbol(value))


def normalize(text: str) -> str:
    """The canonical form of a typed code: any case, spacing and dashes; O→0, I/L→1; checked."""
    if len(text) > MAX_INPUT_CHARS:
        msg = f"claim code is far too long ({len(text)} characters)"
        raise ClaimCodeError(msg)
    # NFKC turns full-width letters and digits from a Chinese input method into ASCII.
    folded = unicodedata.normalize("NFKC", text).upper().translate(_LOOKALIKES)
    symbols = "".join(c for c in folded if not c.isspace() and c not in _SEPARATORS)
    _check_characters(symbols)
    if len(symbols) != CODE_SYMBOLS:
        msg = f"claim code must be {DATA_SYMBOLS} symbols plus a check symbol, got {len(symbols)}"
        raise ClaimCodeError(msg)
    data, check = symbols[:DATA_SYMBOLS], symbols[DATA_SYMBOLS]
    if check != _check_symbol(_value_of(data)):
        msg = "claim code has a typo (check symbol does not match); re-type it or scan the QR code"
        raise ClaimCodeError(msg)
    return symbols


def format_code(canonical: str) -> str:
    """``XXXX-XXXX-XXXX-XXXX-C``: the code as printed and shown to people."""
    symbols = normalize(canonical)
    groups = [symbols[i : i + GROUP_SIZE] for i in range(0, DATA_SYMBOLS, GROUP_SIZE)]
    return "-".join([*groups, symbols[DATA_SYMBOLS]])


def code_hash(text: str) -> str:
    """The sha256 hex digest of the canonical code: all the database keeps of it.

    No salt or slow hash: the code is 80 random bits, not a password someone chose, so
    guessing it from its digest is as hard as guessing it.
    """
    return hashlib.sha256(normalize(text).encode("ascii")).hexdigest()


def code_prefix(text: str) -> str:
    """The first four symbols, to tell codes apart in listings without revealing them."""
    return normalize(text)[:PREFIX_SYMBOLS]


def enroll_link(code: str, server: str, claim_password: str) -> str:
    """The ``termfleet://enroll?code=…&server=…&secret=…`` link that a QR code carries."""
    canonical = normalize(code)
    _check_server(server)
    if not claim_password:
        msg = "claim password is empty; an enrollment link needs the shared claim password"
        raise ClaimCodeError(msg)
    query = urlencode({"code": canonical, "server": server, "secret": claim_password})
    return f"{LINK_SCHEME}://{LINK_ACTION}?{query}"


def parse_claim(text: str) -> ClaimInput:
    """A typed code or a scanned enrollment link; anything else is a ClaimCodeError."""
    stripped = text.strip()
    # A code never holds a colon, so a colon means the technician gave a URL of some kind.
    if ":" not in stripped:
        return ClaimInput(code=normalize(stripped))
    if len(stripped) > MAX_INPUT_CHARS:
        msg = f"enrollment link is far too long ({len(stripped)} characters)"
        raise ClaimCodeError(msg)
    try:
        return _parse_link(stripped)
    except ClaimCodeError:
        raise
    except ValueError as error:  # urllib's own refusals, e.g. a broken IPv6 host or bad UTF-8
        msg = f"not a readable termfleet enrollment link: {error}"
        raise ClaimCodeError(msg) from error


def _parse_link(link: str) -> ClaimInput:
    parts = urlsplit(link)
    if parts.scheme != LINK_SCHEME:
        msg = f"not a termfleet enrollment link: scheme {parts.scheme!r}, expected {LINK_SCHEME!r}"
        raise ClaimCodeError(msg)
    if parts.netloc.lower() != LINK_ACTION or parts.path not in {"", "/"}:
        msg = f"not a termfleet enrollment link: expected {LINK_SCHEME}://{LINK_ACTION}?code=…"
        raise ClaimCodeError(msg)
    fields = parse_qs(parts.query, keep_blank_values=True, errors="strict", max_num_fields=16)
    for name, values in fields.items():
        if len(values) > 1:
            msg = f"link has {name}= more than once; scan the QR code again"
            raise ClaimCodeError(msg)
    code = _single(fields, "code")
    if code is None:
        msg = "link has no code=; scan the QR code again or type the claim code"
        raise ClaimCodeError(msg)
    server = _single(fields, "server")
    if server is not None:
        _check_server(server)
    # Other fields are ignored: a newer control plane may add some that this agent cannot use.
    return ClaimInput(code=normalize(code), server=server, claim_password=_single(fields, "secret"))


def _single(fields: dict[str, list[str]], name: str) -> str | None:
    """The field's value; an empty value counts as absent."""
    values = fields.get(name)
    return values[0] if values and values[0] else None


def _check_server(server: str) -> None:
    try:
        parts = urlsplit(server)
        port = parts.port
    except ValueError as error:
        msg = f"server {server!r} is not a valid URL: {error}"
        raise ClaimCodeError(msg) from error
    if parts.scheme not in SERVER_SCHEMES:
        msg = f"server must be an mqtt:// or mqtts:// URL, got {server!r}"
        raise ClaimCodeError(msg)
    if not parts.hostname or not parts.hostname.isprintable() or " " in parts.hostname:
        msg = f"server URL {server!r} has no valid host"
        raise ClaimCodeError(msg)
    if port == 0:
        msg = f"server URL {server!r} has port 0"
        raise ClaimCodeError(msg)
    # Credentials belong in secret=, and a broker URL has no path, query or fragment.
    if parts.username is not None or parts.path not in {"", "/"} or parts.query or parts.fragment:
        msg = f"server URL {server!r} must be just mqtt(s)://host[:port]"
        raise ClaimCodeError(msg)


def _check_characters(symbols: str) -> None:
    for symbol in symbols:
        if symbol not in CHECK_ALPHABET:
            msg = f"claim code contains {symbol!r}, which claim codes do not use"
            raise ClaimCodeError(msg)
    misplaced = [s for s in symbols[:DATA_SYMBOLS] if s not in DATA_ALPHABET]
    if len(symbols) == CODE_SYMBOLS and misplaced:
        msg = (
            f"claim code has {misplaced[0]!r} before the end, where only the last symbol may be "
            f"one of {CHECK_ALPHABET[len(DATA_ALPHABET) :]}; re-type it or scan the QR code"
        )
        raise ClaimCodeError(msg)


def _value_of(data: str) -> int:
    value = 0
    for symbol in data:
        value = (value << 5) | _DATA_VALUES[symbol]
    return value


def _check_symbol(value: int) -> str:
    return CHECK_ALPHABET[value % CHECK_MODULUS]
