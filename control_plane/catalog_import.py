"""Service-item catalogs (事项清单) from CSV or JSON into a checked ``Catalog``. Pure.

All rows or none: every problem of every row is collected, each with its CSV line (or JSON item
index) and column, and raised together as ``CatalogImportError``. A CSV file is one item per
row under a header; a JSON file is a list of item objects, or an object whose ``items`` is one.
Column names and JSON keys are the English name or one of its Chinese aliases (``HEADERS``):

| column | aliases | | value |
|---|---|---|---|
| code | 事项编码, 实施编码 | required | the item's 实施编码: A-Z, 0-9, groups joined by ``-`` |
| name | 事项名称, 名称 | required | up to 255 characters |
| department | 部门, 部门编码, 实施部门 | required | a department code (``rs``) |
| category | 类别, 事项类别 | | free text (社会保障) |
| channels | 渠道, 办理渠道 | required | list of window, kiosk, station, booth, online, mobile |
| materials | 材料, 申请材料 | | list of required materials |
| needs | 所需外设, 办结所需外设 | | list of peripheral kinds needed to complete the item |
| query_needs | 查询所需外设 | | list of peripheral kinds needed to look it up |
| effective_from | 生效日期 | | ``YYYY-MM-DD``, empty for no start |
| effective_to | 失效日期, 截止日期 | | ``YYYY-MM-DD`` (the last effective day), empty for no end |

A list is its values separated by ``;`` or the full-width U+FF1B (in JSON also an array of
strings); channels and peripheral kinds may be written in Chinese too (``CHANNEL_NAMES``,
``PERIPHERAL_NAMES``). Department codes are those of the sites import (docs/site-import.md).
"""

from __future__ import annotations

import contextlib
import csv
import enum
import io
import itertools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

import msgspec

from edge.catalog import items
from edge.catalog.items import Catalog, CatalogError, CatalogErrorReason, ServiceChannel
from edge.protocol.health import PeripheralKind

_Choice = TypeVar("_Choice", ServiceChannel, PeripheralKind)

HEADERS: Mapping[str, str] = {
    **{name: name for name in ("code", "name", "department", "category", "channels")},
    **{name: name for name in ("materials", "needs", "query_needs")},
    **{name: name for name in ("effective_from", "effective_to")},
    "事项编码": "code", "实施编码": "code",
    "事项名称": "name", "名称": "name",
    "部门": "department", "部门编码": "department", "实施部门": "department",
    "类别": "category", "事项类别": "category",
    "渠道": "channels", "办理渠道": "channels",
    "材料": "materials", "申请材料": "materials",
    "所需外设": "needs", "办结所需外设": "needs",
    "查询所需外设": "query_needs",
    "生效日期": "effective_from",
    "失效日期": "effective_to", "截止日期": "effective_to",
}  # fmt: skip
"""Every accepted column name (English ones in any case) → the field it fills."""
REQUIRED = ("code", "name", "department", "channels")
CHANNEL_NAMES: Mapping[str, ServiceChannel] = {
    **{channel.value: channel for channel in ServiceChannel if channel != "unknown"},
    "窗口": ServiceChannel.WINDOW,
    "一体机": ServiceChannel.KIOSK, "自助终端": ServiceChannel.KIOSK,
    "村居站": ServiceChannel.STATION, "服务站": ServiceChannel.STATION,
    "政务晓屋": ServiceChannel.BOOTH,
    "网上办": ServiceChannel.ONLINE, "网上办理": ServiceChannel.ONLINE,
    "掌上办": ServiceChannel.MOBILE, "粤省事": ServiceChannel.MOBILE,
}  # fmt: skip
PERIPHERAL_NAMES: Mapping[str, PeripheralKind] = {
    **{kind.value: kind for kind in PeripheralKind if kind != "unknown"},
    "凭条打印机": PeripheralKind.RECEIPT_PRINTER,
    "a4打印机": PeripheralKind.A4_PRINTER,
    "身份证读卡器": PeripheralKind.ID_CARD_READER, "二代证读卡器": PeripheralKind.ID_CARD_READER,
    "评价器": PeripheralKind.REVIEW_PAD,
    "高拍仪": PeripheralKind.DOCUMENT_CAMERA,
    "民生卡读卡器": PeripheralKind.CITIZEN_CARD_READER,
    "摄像头": PeripheralKind.CAMERA,
    "扫描仪": PeripheralKind.SCANNER,
    "呼叫按钮": PeripheralKind.CALL_BUTTON,
    "屏幕": PeripheralKind.SCREEN,
}  # fmt: skip
LIST_SEPARATOR = re.compile("[;\uff1b]")
"""``;`` and its full-width form, which Chinese input methods type."""
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_PROBLEMS_IN_MESSAGE = 20
"""The error's message lists this many problems; ``problems`` holds them all."""


class ImportReason(enum.StrEnum):
    """Why the importer refused a file or a field, beside the item rules' ``CatalogErrorReason``."""

    NOT_CSV = "not_csv"
    NOT_JSON = "not_json"
    NO_HEADER = "no_header"
    UNKNOWN_COLUMN = "unknown_column"
    DUPLICATE_COLUMN = "duplicate_column"
    MISSING_COLUMN = "missing_column"
    BAD_ROW = "bad_row"
    EMPTY_FIELD = "empty_field"
    NOT_TEXT = "not_text"
    UNKNOWN_CHANNEL = "unknown_channel"
    UNKNOWN_PERIPHERAL = "unknown_peripheral"
    BAD_DATE = "bad_date"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: where (CSV ``line`` or JSON ``item`` index), which column, and what."""

    reason: ImportReason | CatalogErrorReason
    message: str
    line: int | None = None
    item: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        where += [f"items[{self.item}]"] if self.item is not None else []
        where += [self.column] if self.column else []
        return ": ".join([*where, self.message])


class CatalogImportError(ValueError):
    """A file that does not import; ``problems`` lists them all, ``reason`` is the first's."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        self.reason = self.problems[0].reason
        shown = [str(problem) for problem in self.problems[:MAX_PROBLEMS_IN_MESSAGE]]
        if len(self.problems) > MAX_PROBLEMS_IN_MESSAGE:
            shown.append(f"… and {len(self.problems) - MAX_PROBLEMS_IN_MESSAGE} more")
        super().__init__("\n".join(shown))


@dataclass(frozen=True, slots=True)
class _Row:
    """One item's raw values by field, the column names as the file wrote them, and its place."""

    values: Mapping[str, object]
    columns: Mapping[str, str]
    line: int | None = None
    item: int | None = None

    @property
    def place(self) -> str:
        return f"line {self.line}" if self.line is not None else f"items[{self.item}]"

    def problem(
        self, field: str | None, reason: ImportReason | CatalogErrorReason, message: str
    ) -> Problem:
        column = self.columns.get(field, field) if field else None
        return Problem(reason, message, line=self.line, item=self.item, column=column)


def parse_catalog_csv(
    text: str, *, catalog_id: str, version: int, published_at: datetime | None = None
) -> Catalog:
    """The catalog in CSV ``text`` (a BOM allowed), or ``CatalogImportError`` with every problem."""
    problems: list[Problem] = []
    rows = _csv_rows(text.removeprefix("\ufeff"), problems)
    return _catalog(rows, problems, catalog_id, version, published_at)


def parse_catalog_json(
    text: str, *, catalog_id: str, version: int, published_at: datetime | None = None
) -> Catalog:
    """The catalog in JSON ``text``, or ``CatalogImportError`` with every problem."""
    problems: list[Problem] = []
    rows = _json_rows(text.removeprefix("\ufeff"), problems)
    return _catalog(rows, problems, catalog_id, version, published_at)


def _catalog(
    rows: Sequence[_Row],
    problems: list[Problem],
    catalog_id: str,
    version: int,
    published_at: datetime | None,
) -> Catalog:
    first_place: dict[str, str] = {}
    parsed = []
    for row in rows:
        if (item := _item(row, problems)) is None:
            continue
        if item.code in first_place:
            message = f"{item.code!r} again, first on {first_place[item.code]}"
            problems.append(row.problem("code", CatalogErrorReason.DUPLICATE_CODE, message))
        first_place.setdefault(item.code, row.place)
        parsed.append(item)
    try:
        catalog = Catalog(catalog_id=catalog_id, version=version, published_at=published_at)
        if not problems:
            return msgspec.structs.replace(catalog, items=tuple(parsed))
    except CatalogError as exc:
        problems.insert(0, Problem(exc.reason, exc.problem, column=exc.field))
    raise CatalogImportError(problems)


def _item(row: _Row, problems: list[Problem]) -> items.ServiceItem | None:
    """The row's item, or None after adding each of its problems to ``problems``."""
    before = len(problems)
    fields: dict[str, Any] = {}
    for field, reader in _READERS.items():
        try:
            fields[field] = reader(row, field)
        except (_FieldError, CatalogError) as exc:
            problems.append(row.problem(field, exc.reason, exc.problem))
    try:
        if "effective_from" in fields and "effective_to" in fields:
            items.check_dates(fields["effective_from"], fields["effective_to"])
        # Each rule was checked above, field by field; building the item checks them all again.
        return items.ServiceItem(**fields) if len(problems) == before else None
    except CatalogError as exc:
        problems.append(row.problem(exc.field, exc.reason, exc.problem))
        return None


class _FieldError(ValueError):
    def __init__(self, reason: ImportReason, problem: str) -> None:
        super().__init__(problem)
        self.reason, self.problem = reason, problem


def _text(row: _Row, field: str) -> str:
    value = row.values.get(field)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _FieldError(ImportReason.NOT_TEXT, f"{value!r} is not text")
    value = value.strip()
    if not value and field in REQUIRED:
        raise _FieldError(ImportReason.EMPTY_FIELD, "required, and empty")
    return value


def _strings(row: _Row, field: str) -> tuple[str, ...]:
    value = row.values.get(field)
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        parts = [part.strip() for part in value]
    else:
        parts = [part.strip() for part in LIST_SEPARATOR.split(_text(row, field))]
    if not any(parts) and field in REQUIRED:
        raise _FieldError(ImportReason.EMPTY_FIELD, "required, and empty")
    return tuple(part for part in parts if part)


def _checked(rule: Callable[[str], None]) -> Callable[[_Row, str], str]:
    def read(row: _Row, field: str) -> str:
        value = _text(row, field)
        rule(value)
        return value

    return read


def _texts(row: _Row, field: str) -> tuple[str, ...]:
    values = _strings(row, field)
    items.check_texts(field, values)
    return values


def _choices(
    names: Mapping[str, _Choice], what: str, reason: ImportReason
) -> Callable[[_Row, str], tuple[_Choice, ...]]:
    def read(row: _Row, field: str) -> tuple[_Choice, ...]:
        values = _strings(row, field)
        unknown = [value for value in values if value.lower() not in names]
        if unknown:
            known = ", ".join(dict.fromkeys(names.values()))
            raise _FieldError(reason, f"{', '.join(map(repr, unknown))}: not {what} ({known})")
        return tuple(names[value.lower()] for value in values)

    return read


def _date(row: _Row, field: str) -> date | None:
    value = _text(row, field)
    if not value:
        return None
    parsed = None
    if DATE.fullmatch(value):  # fromisoformat alone also takes 20240101 and 2024-W01-1
        with contextlib.suppress(ValueError):  # 2024-02-30
            parsed = date.fromisoformat(value)
    if parsed is None:
        raise _FieldError(ImportReason.BAD_DATE, f"{value!r} is not a YYYY-MM-DD date")
    return parsed


_kinds = _choices(PERIPHERAL_NAMES, "a peripheral kind", ImportReason.UNKNOWN_PERIPHERAL)
_READERS: Mapping[str, Callable[[_Row, str], object]] = {
    "code": _checked(items.check_code),
    "name": _checked(items.check_name),
    "department": _checked(items.check_department),
    "category": _checked(lambda value: items.check_texts("category", (value,))),
    "channels": _choices(CHANNEL_NAMES, "a channel", ImportReason.UNKNOWN_CHANNEL),
    "materials": _texts,
    "needs": _kinds,
    "query_needs": _kinds,
    "effective_from": _date,
    "effective_to": _date,
}


def _columns(names: Sequence[str], problems: list[Problem], **place: int) -> dict[str, str]:
    """Field → the column name the file used; unknown and repeated names added to ``problems``."""
    columns: dict[str, str] = {}
    for name in names:
        field = HEADERS.get(name) or HEADERS.get(name.lower())
        if field is None:
            message = (
                f"unknown column {name!r}; known: {', '.join(dict.fromkeys(HEADERS.values()))}"
            )
            problems.append(Problem(ImportReason.UNKNOWN_COLUMN, message, column=name, **place))
        elif field in columns:
            message = f"{name!r} and {columns[field]!r} are both {field}"
            problems.append(Problem(ImportReason.DUPLICATE_COLUMN, message, column=name, **place))
        else:
            columns[field] = name
    return columns


def _csv_rows(text: str, problems: list[Problem]) -> list[_Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = [(reader.line_num, record) for record in reader]
    except csv.Error as exc:
        problems.append(Problem(ImportReason.NOT_CSV, f"not CSV: {exc}", line=reader.line_num))
        return []
    if not records or not any(cell.strip() for cell in records[0][1]):
        problems.append(
            Problem(ImportReason.NO_HEADER, "a CSV file starts with its header", line=1)
        )
        return []
    header = [cell.strip() for cell in records[0][1]]
    before = len(problems)
    columns = _columns([name for name in header if name], problems, line=1)
    missing = [field for field in REQUIRED if field not in columns]
    if missing:
        message = f"no column for {', '.join(missing)}"
        problems.append(Problem(ImportReason.MISSING_COLUMN, message, line=1))
    if len(problems) > before:
        return []
    return [
        row
        for (previous, _), (_, record) in itertools.pairwise(records)
        if (row := _csv_row(record, header, columns, previous + 1, problems)) is not None
    ]


def _csv_row(
    record: Sequence[str],
    header: Sequence[str],
    columns: Mapping[str, str],
    line: int,
    problems: list[Problem],
) -> _Row | None:
    if not any(cell.strip() for cell in record):
        return None  # a blank line, or a row Excel left with only separators
    values: dict[str, object] = {}
    names = {name: field for field, name in columns.items()}
    for position, cell in enumerate(record):
        name = header[position] if position < len(header) else ""
        if name in names:
            values[names[name]] = cell
        elif cell.strip():
            message = f"a value in column {position + 1}, which has no header"
            problems.append(Problem(ImportReason.BAD_ROW, message, line=line))
            return None
    return _Row(values, columns, line=line)


def _json_rows(text: str, problems: list[Problem]) -> list[_Row]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(Problem(ImportReason.NOT_JSON, f"not JSON: {exc.msg}", line=exc.lineno))
        return []
    except (ValueError, RecursionError) as exc:  # an integer of 5,000 digits, nesting past limit
        problems.append(Problem(ImportReason.NOT_JSON, f"not JSON this importer reads: {exc}"))
        return []
    if isinstance(document, dict) and set(document) == {"items"}:
        document = document["items"]
    if not isinstance(document, list):
        message = 'a list of item objects, or an object whose only key is "items"'
        problems.append(Problem(ImportReason.NOT_JSON, message))
        return []
    rows = []
    for index, values in enumerate(document):
        if not isinstance(values, dict):
            problems.append(Problem(ImportReason.BAD_ROW, "not an object", item=index))
            continue
        before = len(problems)
        columns = _columns(list(values), problems, item=index)
        if len(problems) == before:
            fields = {field: values[name] for field, name in columns.items()}
            rows.append(_Row(fields, columns, item=index))
    return rows
