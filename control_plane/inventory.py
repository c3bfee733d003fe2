"""The import format: rows of the tree, departments, sites, windows and devices, checked. Pure.

Each row arrives as a mapping (a CSV record or a JSON object) with ``where`` saying where it came
from (``sites.csv line 4``), and leaves as a frozen spec or an ``InventoryError`` naming that
place and the field. An optional field the row does not have is None in its spec: an import
creates it with its default and leaves it alone on an existing row. docs/site-import.md
describes the format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NoReturn

from edge import schedule
from edge.protocol import DeviceKind
from edge.protocol.common import ID_PATTERN
from provisioning.dynsec import SERVICE_PREFIX

from . import jurisdiction
from .jurisdiction import JurisdictionError, Level

# Matched whole (fullmatch): with ``$``, a trailing newline would pass.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}")
DEVICE_ID = re.compile(ID_PATTERN)
LABEL_KEY = re.compile(r"[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?")
MAX_TEXT = 255
MAX_NAME = 128
MAX_SERIAL = 64
MAX_LABEL_VALUE = 63
MAX_HOLIDAY_RANGE_DAYS = 366
IMPORTABLE_KINDS = tuple(kind for kind in DeviceKind if kind is not DeviceKind.UNKNOWN)


class InventoryError(ValueError):
    """A row that cannot be imported: where it is, which field, and what is wrong."""

    def __init__(self, where: str, field_name: str | None, problem: str) -> None:
        self.where, self.field, self.problem = where, field_name, problem
        super().__init__(
            f"{where}: {field_name}: {problem}" if field_name else f"{where}: {problem}"
        )


@dataclass(frozen=True)
class NodeSpec:
    where: str
    code: str
    name: str
    level: Level
    parent: str | None


@dataclass(frozen=True)
class DepartmentSpec:
    where: str
    code: str
    name: str


@dataclass(frozen=True)
class SiteSpec:
    where: str
    code: str
    name: str
    level: Level
    node: str
    hours: str
    address: str | None = None
    holidays: dict[str, str] | None = None


@dataclass(frozen=True)
class WindowSpec:
    where: str
    site: str
    number: str
    name: str | None = None
    departments: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DeviceSpec:
    where: str
    device_id: str
    kind: DeviceKind
    serial: str | None = None
    site: str | None = None
    """A site code, ``""`` to take the device off its site, None to leave it."""
    window: str | None = None
    """A window number at ``site``; ``""`` for none."""
    labels: dict[str, str] | None = None


Spec = NodeSpec | DepartmentSpec | SiteSpec | WindowSpec | DeviceSpec


# --- rows ------------------------------------------------------------------------------------


class Row:
    """One row being read: its fields, and where it came from for messages."""

    def __init__(self, values: Mapping[str, object], where: str, table: Table) -> None:
        self.values, self.where = values, where
        unknown = sorted(str(k) for k in values if k not in table.columns)
        if unknown:
            expected = ", ".join(table.columns)
            msg = f"unknown field(s) {', '.join(unknown)}; {table.name} has {expected}"
            raise InventoryError(where, None, msg)

    def fail(self, field_name: str | None, problem: str) -> NoReturn:
        raise InventoryError(self.where, field_name, problem) from None

    def text(self, name: str, max_length: int = MAX_TEXT) -> str:
        """A field the row must have, not empty."""
        value = self.optional(name, max_length)
        if not value:
            self.fail(name, "missing")
        return value

    def optional(self, name: str, max_length: int = MAX_TEXT) -> str | None:
        """None when the row lacks the field; its text (maybe empty) otherwise."""
        value = self.values.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(name, f"must be text, not {type(value).__name__} {value!r}")
        value = value.strip()
        if len(value) > max_length:
            self.fail(name, f"longer than {max_length} characters")
        return value

    def matching(self, name: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.text(name)
        if not pattern.fullmatch(value):
            self.fail(name, f"{value!r} is not {what}")
        return value

    def code(self, name: str) -> str:
        try:
            return jurisdiction.check_code(self.text(name))
        except JurisdictionError as exc:
            self.fail(name, str(exc))

    def level(self, name: str) -> Level:
        try:
            return jurisdiction.parse_level(self.text(name))
        except JurisdictionError as exc:
            self.fail(name, str(exc))


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]


NODES = Table("jurisdiction", ("code", "name", "level", "parent"))
DEPARTMENTS = Table("departments", ("code", "name"))
SITES = Table("sites", ("code", "name", "level", "node", "hours", "address", "holidays"))
WINDOWS = Table("windows", ("site", "number", "name", "departments"))
DEVICES = Table("devices", ("device_id", "kind", "serial", "site", "window", "labels"))
TABLES = (NODES, DEPARTMENTS, SITES, WINDOWS, DEVICES)


def node(values: Mapping[str, object], where: str) -> NodeSpec:
    row = Row(values, where, NODES)
    code = row.code("code")
    if "parent" not in values:
        row.fail("parent", "missing (leave it empty for the root)")
    parent = row.optional("parent") or None
    if parent is not None:
        parent = row.code("parent")
    if parent == code:
        row.fail("parent", "a node cannot be its own parent")
    return NodeSpec(where, code, row.text("name", MAX_NAME), row.level("level"), parent)


def department(values: Mapping[str, object], where: str) -> DepartmentSpec:
    row = Row(values, where, DEPARTMENTS)
    code = row.matching("code", NAME, "a department code")
    return DepartmentSpec(where, code, row.text("name", MAX_NAME))


def site(values: Mapping[str, object], where: str) -> SiteSpec:
    row = Row(values, where, SITES)
    code = row.matching("code", NAME, "a site code (letters, digits, '.', '_', '-')")
    name, level, node_code = row.text("name"), row.level("level"), row.code("node")
    hours = row.text("hours")
    holidays = _holidays(row, values.get("holidays"))
    try:
        schedule.parse(hours, [(date.fromisoformat(day), spans) for day, spans in holidays.items()])
    except schedule.ScheduleError as exc:
        row.fail("hours", str(exc))
    return SiteSpec(
        where,
        code=code,
        name=name,
        level=level,
        node=node_code,
        hours=hours,
        address=row.optional("address"),
        holidays=holidays if "holidays" in values else None,
    )


def window(values: Mapping[str, object], where: str) -> WindowSpec:
    row = Row(values, where, WINDOWS)
    site_code = row.matching("site", NAME, "a site code")
    number = row.matching("number", NUMBER, "a window number (up to 16 letters and digits)")
    departments = _names(row, "departments", values.get("departments"))
    return WindowSpec(
        where,
        site=site_code,
        number=number,
        name=row.optional("name", MAX_NAME),
        departments=tuple(departments) if departments is not None else None,
    )


def device(values: Mapping[str, object], where: str) -> DeviceSpec:
    row = Row(values, where, DEVICES)
    device_id = row.matching("device_id", DEVICE_ID, "a device id (as in MQTT topics)")
    if device_id.startswith(SERVICE_PREFIX):
        # A terminal's id is its broker login: this one would pass for one of termfleet's own.
        reserved = "which is reserved for termfleet's own broker logins"
        row.fail("device_id", f"{device_id!r} starts with {SERVICE_PREFIX!r}, {reserved}")
    kind_text = row.text("kind")
    if kind_text not in IMPORTABLE_KINDS:
        row.fail("kind", f"{kind_text!r} is not one of {', '.join(IMPORTABLE_KINDS)}")
    site_code = row.optional("site")
    if site_code:
        row.matching("site", NAME, "a site code")
    window_number = row.optional("window")
    if window_number:
        row.matching("window", NUMBER, "a window number")
        if not site_code:
            row.fail("window", "a window needs the site it is at")
    if window_number is None and site_code is not None:
        window_number = ""  # a device placed at a site is at no window unless the row says so
    return DeviceSpec(
        where,
        device_id=device_id,
        kind=DeviceKind(kind_text),
        serial=row.optional("serial", MAX_SERIAL),
        site=site_code,
        window=window_number,
        labels=_labels(row, values.get("labels")),
    )


# --- fields with structure --------------------------------------------------------------------


def _holidays(row: Row, value: object) -> dict[str, str]:
    """``"2025-10-01..2025-10-07 closed; 2025-09-28 08:30-17:30"`` or a JSON object of those."""
    if value is None or value == "":
        return {}
    entries: list[tuple[str, object]]
    if isinstance(value, str):
        entries = [e.strip().partition(" ")[::2] for e in value.split(";") if e.strip()]
    elif isinstance(value, Mapping):
        entries = [(str(k), v) for k, v in value.items()]
    else:
        row.fail("holidays", "must be text or an object of date → hours")
    result: dict[str, str] = {}
    for days, spans in entries:
        if not isinstance(spans, str) or not spans.strip():
            row.fail("holidays", f"{days}: no hours (use 'closed' or HH:MM-HH:MM)")
        try:
            schedule.parse_spans(spans)
        except schedule.ScheduleError as exc:
            row.fail("holidays", f"{days}: {exc}")
        for day in _dates(row, days.strip()):
            result[day.isoformat()] = spans.strip()
    return dict(sorted(result.items()))


def _dates(row: Row, text: str) -> Iterator[date]:
    first, _, last = text.partition("..")
    try:
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if last else start
    except ValueError:
        row.fail("holidays", f"{text!r} is not a date or range (YYYY-MM-DD..YYYY-MM-DD)")
    if not 0 <= (end - start).days < MAX_HOLIDAY_RANGE_DAYS:
        row.fail("holidays", f"{text!r} is not a range of up to {MAX_HOLIDAY_RANGE_DAYS} days")
    for offset in range((end - start).days + 1):
        yield start + timedelta(days=offset)


def _names(row: Row, name: str, value: object) -> list[str] | None:
    """Codes as a JSON list or as text separated by commas."""
    if value is None:
        return None
    if isinstance(value, str):
        items: Iterable[object] = (part.strip() for part in value.split(",") if part.strip())
    elif isinstance(value, list):
        items = value
    else:
        row.fail(name, "must be a list of codes, or codes separated by commas")
    codes = []
    for item in items:
        if not isinstance(item, str) or not NAME.fullmatch(item):
            row.fail(name, f"{item!r} is not a code")
        codes.append(item)
    return codes


def _labels(row: Row, value: object) -> dict[str, str] | None:
    """``key=value`` pairs separated by commas, or a JSON object."""
    if value is None:
        return None
    if isinstance(value, str):
        pairs = [p.strip().partition("=") for p in value.split(",") if p.strip()]
        if any(not sep for _, sep, _ in pairs):
            row.fail("labels", "write labels as key=value, separated by commas")
        items: list[tuple[object, object]] = [(k.strip(), v.strip()) for k, _, v in pairs]
    elif isinstance(value, Mapping):
        items = list(value.items())
    else:
        row.fail("labels", "must be key=value pairs, or an object")
    labels: dict[str, str] = {}
    for key, text in items:
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            row.fail("labels", f"{key!r} is not a label key (lower case, digits, ._/-)")
        if not isinstance(text, str) or len(text) > MAX_LABEL_VALUE:
            row.fail("labels", f"{key}: the value must be text of up to 63 characters")
        labels[key] = text
    return dict(sorted(labels.items()))
