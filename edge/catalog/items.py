"""The service-item catalog (事项清单): items, the catalog and its canonical file format. Pure.

A catalog reaches terminals inside a package of kind "catalog" as the bytes of
``encode_catalog`` and is read there with ``decode_catalog``. It is our own file, so unknown
fields are refused; a change that adds a field bumps ``CATALOG_FORMAT`` and an older agent
refuses the newer file with ``reason`` ``unsupported_format`` instead of misreading it.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Iterable
from datetime import date
from typing import TypeVar

import msgspec

from edge.protocol.common import ID_PATTERN, OpenEnum, Timestamp
from edge.protocol.health import PeripheralKind

_Choice = TypeVar("_Choice", bound=enum.StrEnum)

CATALOG_FORMAT = 1
"""The file format this build writes; ``SUPPORTED_FORMATS`` are those it reads."""
SUPPORTED_FORMATS = frozenset({CATALOG_FORMAT})
CATALOG_FILE = "catalog.json"
"""The catalog's file in a package of kind "catalog": ``encode_catalog``'s bytes."""

# Matched whole (fullmatch). Published 实施编码 are upper-case letters and digits (they embed
# the implementing body's unified social credit code); DOMAIN.md fixes no format and the demo
# uses short department-prefixed codes (RS-0012), so hyphen-separated groups are allowed too.
ITEM_CODE = re.compile(r"[0-9A-Z]+(?:-[0-9A-Z]+)*")
MAX_CODE_CHARS = 64
"""The roll-up tables keep an item code in 64 characters (control_plane/db/rollup_models.py)."""
# The departments table of the sites import takes the same codes (control_plane/inventory.py).
DEPARTMENT_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CATALOG_ID = re.compile(ID_PATTERN)
MAX_TEXT_CHARS = 255
"""Longest name, category or material: one line on a kiosk's screen, one database column."""


class ServiceChannel(OpenEnum):
    """Where a citizen can get an item done (办理渠道)."""

    WINDOW = "window"
    """A service window (窗口) in a hall."""
    KIOSK = "kiosk"
    """A self-service kiosk (一体机, 粤智助)."""
    STATION = "station"
    """A village public service station PC (村居公共服务站)."""
    BOOTH = "booth"
    """A guidance booth with remote video help (政务晓屋)."""
    ONLINE = "online"
    """The provincial web portal."""
    MOBILE = "mobile"
    """A mobile app or mini-program (粤省事)."""
    UNKNOWN = "unknown"


class CatalogErrorReason(enum.StrEnum):
    """Why an item or a catalog was refused; the closed set behind ``CatalogError.reason``."""

    BAD_CODE = "bad_code"
    BAD_NAME = "bad_name"
    BAD_DEPARTMENT = "bad_department"
    BAD_TEXT = "bad_text"
    NO_CHANNEL = "no_channel"
    BAD_DATES = "bad_dates"
    DUPLICATE_CODE = "duplicate_code"
    BAD_CATALOG_ID = "bad_catalog_id"
    BAD_VERSION = "bad_version"
    BAD_PUBLISHED_AT = "bad_published_at"
    UNSUPPORTED_FORMAT = "unsupported_format"
    MALFORMED = "malformed"


class CatalogError(ValueError):
    """An item or catalog that breaks a rule; ``field`` names the field when there is one."""

    def __init__(
        self, reason: CatalogErrorReason, message: str, *, field: str | None = None
    ) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.reason = reason
        self.field = field
        self.problem = message


def check_code(code: str) -> None:
    """Raise ``CatalogError`` unless ``code`` is an item code (实施编码)."""
    if len(code) > MAX_CODE_CHARS or not ITEM_CODE.fullmatch(code):
        msg = f"{code!r} is not an item code: A-Z and 0-9 in groups joined by '-', at most 64"
        raise CatalogError(CatalogErrorReason.BAD_CODE, msg, field="code")


def check_name(name: str) -> None:
    """Raise ``CatalogError`` unless ``name`` is one non-blank line of at most 255 characters."""
    if not name.strip():
        raise CatalogError(CatalogErrorReason.BAD_NAME, "must not be empty", field="name")
    if len(name) > MAX_TEXT_CHARS or "\n" in name or "\r" in name:
        msg = f"one line of at most {MAX_TEXT_CHARS} characters"
        raise CatalogError(CatalogErrorReason.BAD_NAME, msg, field="name")


def check_department(department: str) -> None:
    """Raise ``CatalogError`` unless ``department`` is a department code as the sites import's."""
    if not DEPARTMENT_CODE.fullmatch(department):
        msg = f"{department!r} is not a department code: letters, digits, '.', '_', '-', up to 64"
        raise CatalogError(CatalogErrorReason.BAD_DEPARTMENT, msg, field="department")


def check_texts(field: str, texts: Iterable[str]) -> None:
    """Raise ``CatalogError`` if one of ``texts`` is longer than 255 characters or has a newline."""
    for text in texts:
        if len(text) > MAX_TEXT_CHARS or "\n" in text or "\r" in text:
            msg = f"{text[:20]!r}…: one line of at most {MAX_TEXT_CHARS} characters"
            raise CatalogError(CatalogErrorReason.BAD_TEXT, msg, field=field)


def check_channels(channels: Iterable[ServiceChannel]) -> None:
    """Raise ``CatalogError`` if ``channels`` is empty: an item nobody can get done is no item."""
    if not tuple(channels):
        msg = "at least one channel (window, kiosk, station, booth, online, mobile)"
        raise CatalogError(CatalogErrorReason.NO_CHANNEL, msg, field="channels")


def check_dates(effective_from: date | None, effective_to: date | None) -> None:
    """Raise ``CatalogError`` if the item would stop being effective before it starts."""
    if effective_from is not None and effective_to is not None and effective_to < effective_from:
        msg = f"{effective_to} is before effective_from {effective_from}"
        raise CatalogError(CatalogErrorReason.BAD_DATES, msg, field="effective_to")


def _canonical(values: Iterable[_Choice]) -> tuple[_Choice, ...]:
    # Sets in meaning, so stored sorted and without repeats: equal items encode to equal bytes.
    return tuple(sorted(set(values)))


class ServiceItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One item (事项) of a catalog: what it is, where it is offered, what a terminal needs for it.

    Both levels of ``needs`` are peripheral kinds: ``query_needs`` to look the item up (often
    nothing, or the ID-card reader), ``needs`` to complete it (a printout, a card read). A
    terminal completes an item only with both; dates are inclusive, None is unbounded.
    """

    code: str
    """The item's 实施编码, unique in its catalog."""
    name: str
    department: str
    """Code of the approving department (审批部门), as in the sites import."""
    category: str = ""
    """Free text, as the source list groups items (社会保障, 户籍办理, 税务 …)."""
    channels: tuple[ServiceChannel, ...]
    materials: tuple[str, ...] = ()
    """Required materials (申请材料), in the order the citizen is told them."""
    needs: tuple[PeripheralKind, ...] = ()
    query_needs: tuple[PeripheralKind, ...] = ()
    effective_from: date | None = None
    effective_to: date | None = None

    def __post_init__(self) -> None:
        check_code(self.code)
        check_name(self.name)
        check_department(self.department)
        check_texts("category", (self.category,))
        check_texts("materials", self.materials)
        check_channels(self.channels)
        check_dates(self.effective_from, self.effective_to)
        msgspec.structs.force_setattr(self, "channels", _canonical(self.channels))
        msgspec.structs.force_setattr(self, "needs", _canonical(self.needs))
        msgspec.structs.force_setattr(self, "query_needs", _canonical(self.query_needs))

    def effective_on(self, day: date) -> bool:
        """Whether ``day`` lies within the item's effective dates (both ends included)."""
        starts, ends = self.effective_from, self.effective_to
        return (starts is None or starts <= day) and (ends is None or day <= ends)


class Catalog(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A versioned 事项清单: items sorted by code, each code once. ``v`` is the file format."""

    v: int = CATALOG_FORMAT
    catalog_id: str
    version: int
    """Counts the catalog's editions from 1; a terminal never installs an older one."""
    published_at: Timestamp | None = None
    """Set when the control plane publishes the catalog; None for a draft."""
    items: tuple[ServiceItem, ...] = ()

    def __post_init__(self) -> None:
        if self.v not in SUPPORTED_FORMATS:
            msg = f"format {self.v} is not one this build reads ({sorted(SUPPORTED_FORMATS)})"
            raise CatalogError(CatalogErrorReason.UNSUPPORTED_FORMAT, msg, field="v")
        if not CATALOG_ID.fullmatch(self.catalog_id):
            msg = f"{self.catalog_id!r}: letters, digits, '.', '_', '-', up to 64"
            raise CatalogError(CatalogErrorReason.BAD_CATALOG_ID, msg, field="catalog_id")
        if self.version < 1:
            msg = f"{self.version}: versions count from 1"
            raise CatalogError(CatalogErrorReason.BAD_VERSION, msg, field="version")
        if self.published_at is not None and self.published_at.utcoffset() is None:
            msg = "needs a UTC offset"
            raise CatalogError(CatalogErrorReason.BAD_PUBLISHED_AT, msg, field="published_at")
        items = tuple(sorted(self.items, key=lambda item: item.code))
        for before, after in itertools.pairwise(items):
            if before.code == after.code:
                msg = f"{after.code!r} more than once"
                raise CatalogError(CatalogErrorReason.DUPLICATE_CODE, msg, field="items")
        msgspec.structs.force_setattr(self, "items", items)


class _FormatProbe(msgspec.Struct):
    v: int = CATALOG_FORMAT


def encode_catalog(catalog: Catalog) -> bytes:
    """The catalog's canonical JSON: equal catalogs give equal bytes, on every build."""
    return msgspec.json.encode(catalog)


def decode_catalog(data: bytes | str) -> Catalog:
    """The catalog in ``data``, or ``CatalogError``; the format version is checked first."""
    try:
        probe = msgspec.json.decode(data, type=_FormatProbe)
    except msgspec.DecodeError as exc:
        raise CatalogError(CatalogErrorReason.MALFORMED, str(exc)) from None
    if probe.v not in SUPPORTED_FORMATS:
        msg = f"format {probe.v} is not one this build reads ({sorted(SUPPORTED_FORMATS)})"
        raise CatalogError(CatalogErrorReason.UNSUPPORTED_FORMAT, msg, field="v")
    try:
        return msgspec.json.decode(data, type=Catalog)
    except msgspec.DecodeError as exc:
        # A rule of __post_init__ arrives wrapped, with the JSON path in the message; keep both.
        cause = exc.__cause__
        reason = cause.reason if isinstance(cause, CatalogError) else CatalogErrorReason.MALFORMED
        raise CatalogError(reason, str(exc)) from None
