"""The device list's query: its filters and its cursor, read from a query string and checked. Pure.

Every parameter is checked before a query runs, and a bad one is a ``QueryError`` naming it:
an unknown parameter, a repeated one that is not repeatable, a value out of its set, a cursor
that is not one this API wrote for the same filters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from edge.protocol import DeviceKind, PeripheralKind

from . import jurisdiction
from .device_labels import LabelError, parse_selector
from .fleet import PRESENCE_FILTERS
from .inventory import NAME
from .jurisdiction import JurisdictionError
from .lifecycle import Lifecycle

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_TEXT = 64
MAX_LABEL_FILTERS = 8
ANY_FAULT = "any"
"""``?fault=any``: a device with any peripheral that needs attention."""
KINDS = frozenset(kind.value for kind in DeviceKind)
LIFECYCLES = frozenset(state.value for state in Lifecycle)
FAULTS = frozenset(kind.value for kind in PeripheralKind) | {ANY_FAULT}
REPEATABLE = frozenset({"label"})
PARAMETERS = frozenset(
    {"node", "site", "kind", "presence", "fault", "label", "q", "lifecycle", "limit", "cursor"}
)

CURSOR_VERSION = 1
_CHECK_BYTES = 8
MALFORMED_CURSOR = "is malformed; pass next_cursor as the API returned it"


class QueryError(ValueError):
    """A parameter of the list that is refused; the message starts with its name."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter} {message}")
        self.parameter = parameter
        self.message = f"{parameter} {message}"


@dataclass(frozen=True, slots=True)
class DeviceFilters:
    """What a device list asks for; None (or empty) leaves a filter out."""

    node: str | None = None
    site: str | None = None
    kind: str | None = None
    presence: str | None = None
    fault: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    text: str | None = None
    lifecycle: str | None = None

    def digest(self) -> str:
        """A short fingerprint of the filters, so that a cursor is used with its own query."""
        canonical = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class DeviceQuery:
    filters: DeviceFilters
    limit: int
    after: str
    """The device id the page starts after ("" for the first page)."""


def parse_query(items: Iterable[tuple[str, str]]) -> DeviceQuery:
    """The query of ``GET /api/v1/devices`` from its parameters, in order."""
    values: dict[str, list[str]] = {}
    for name, value in items:
        if name not in PARAMETERS:
            msg = f"is not a parameter of this list; it takes {', '.join(sorted(PARAMETERS))}"
            raise QueryError(parameter=name, message=msg)
        values.setdefault(name, []).append(value)
        if len(values[name]) > 1 and name not in REPEATABLE:
            raise QueryError(parameter=name, message="may be given once")

    def one(name: str) -> str | None:
        return values.get(name, [None])[0]

    filters = DeviceFilters(
        node=_node(one("node")),
        site=_site(one("site")),
        kind=_choice("kind", one("kind"), KINDS),
        presence=_choice("presence", one("presence"), PRESENCE_FILTERS),
        fault=_choice("fault", one("fault"), FAULTS),
        labels=_labels(values.get("label", [])),
        text=_text(one("q")),
        lifecycle=_choice("lifecycle", one("lifecycle"), LIFECYCLES),
    )
    cursor = one("cursor")
    after = decode_cursor(cursor, filters) if cursor else ""
    return DeviceQuery(filters, _limit(one("limit")), after)


def _choice(name: str, value: str | None, allowed: frozenset[str]) -> str | None:
    if value is not None and value not in allowed:
        raise QueryError(parameter=name, message=f"must be one of {sorted(allowed)}, not {value!r}")
    return value


def _node(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return jurisdiction.check_code(value)
    except JurisdictionError as exc:
        raise QueryError(parameter="node", message=f"{value!r}: {exc}") from None


def _site(value: str | None) -> str | None:
    if value is not None and not NAME.fullmatch(value):
        raise QueryError(parameter="site", message=f"{value!r} is not a site code")
    return value


def _labels(selectors: list[str]) -> tuple[tuple[str, str], ...]:
    if len(selectors) > MAX_LABEL_FILTERS:
        raise QueryError(
            parameter="label", message=f"may be given at most {MAX_LABEL_FILTERS} times"
        )
    try:
        return tuple(sorted({parse_selector(text) for text in selectors}))
    except LabelError as exc:
        raise QueryError(parameter="label", message=f"filter refused: {exc}") from None


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if not 1 <= len(text) <= MAX_TEXT or not text.isprintable():
        raise QueryError(
            parameter="q", message=f"must be printable text of 1 to {MAX_TEXT} characters"
        )
    return text


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit():
        raise QueryError(parameter="limit", message=f"must be an integer, not {value!r}")
    if not 1 <= int(value) <= MAX_LIMIT:
        raise QueryError(parameter="limit", message=f"must be between 1 and {MAX_LIMIT}")
    return int(value)


# --- cursors ---------------------------------------------------------------------------------
# A cursor names the last device of a page and the filters it was made for, base64url, with a
# SHA-256 check over both. It carries no authority: every page is narrowed to the token's scope
# again, so a forged cursor can only skip ahead within what the token may see anyway. The check
# is there to turn a truncated, edited or mixed-up cursor into a 400 instead of a wrong page; a
# keyed signature (HMAC) would need a key shared by every replica and would protect nothing more.


def encode_cursor(after: str, filters: DeviceFilters) -> str:
    payload = json.dumps(
        {"v": CURSOR_VERSION, "after": after, "filters": filters.digest()}, separators=(",", ":")
    ).encode()
    check = hashlib.sha256(payload).digest()[:_CHECK_BYTES]
    return base64.urlsafe_b64encode(payload + check).decode().rstrip("=")


def decode_cursor(text: str, filters: DeviceFilters) -> str:
    """The device id a cursor continues after; refused when malformed or for other filters."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise QueryError(parameter="cursor", message=MALFORMED_CURSOR) from None
    payload, check = raw[:-_CHECK_BYTES], raw[-_CHECK_BYTES:]
    expected = hashlib.sha256(payload).digest()[:_CHECK_BYTES]
    if len(raw) <= _CHECK_BYTES or not hmac.compare_digest(check, expected):
        raise QueryError(parameter="cursor", message=MALFORMED_CURSOR)
    try:
        body = json.loads(payload)
    except ValueError:
        raise QueryError(parameter="cursor", message=MALFORMED_CURSOR) from None
    if not isinstance(body, dict):
        raise QueryError(parameter="cursor", message=MALFORMED_CURSOR)
    after = body.get("after")
    if body.get("v") != CURSOR_VERSION or not isinstance(after, str):
        raise QueryError(
            parameter="cursor", message="was written by another version of this API; start again"
        )
    if body.get("filters") != filters.digest():
        raise QueryError(
            parameter="cursor", message="belongs to a query with other filters; start again"
        )
    return after
