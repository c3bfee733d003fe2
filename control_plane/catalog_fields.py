"""The columns of a service-item catalog file: names, value tables and a reader per field. Pure.

``read_item`` turns one row of raw values into a ``ServiceItem``, or records every problem of
the row, located by CSV line (or JSON item index) and column. ``catalog_import`` finds the rows.
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from edge.catalog import items
from edge.catalog.items import CatalogError, CatalogErrorReason, ServiceChannel
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


@dataclass(frozen=True, slots=True)
class Row:
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


def read_item(row: Row, problems: list[Problem]) -> items.ServiceItem | None:
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
    """A value the importer's own rules refuse (``reason``), before the item rules see it."""

    def __init__(self, reason: ImportReason, problem: str) -> None:
        super().__init__(problem)
        self.reason, self.problem = reason, problem


def _text(row: Row, field: str) -> str:
    value = row.values.get(field)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise _FieldError(ImportReason.NOT_TEXT, f"{value!r} is not text")
    value = value.strip()
    if not value and field in REQUIRED:
        raise _FieldError(ImportReason.EMPTY_FIELD, "required, and empty")
    return value


def _strings(row: Row, field: str) -> tuple[str, ...]:
    value = row.values.get(field)
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        parts = [part.strip() for part in value]
    else:
        parts = [part.strip() for part in LIST_SEPARATOR.split(_text(row, field))]
    if not any(parts) and field in REQUIRED:
        raise _FieldError(ImportReason.EMPTY_FIELD, "required, and empty")
    return tuple(part for part in parts if part)


def _checked(rule: Callable[[str], None]) -> Callable[[Row, str], str]:
    def read(row: Row, field: str) -> str:
        value = _text(row, field)
        rule(value)
        return value

    return read


def _texts(row: Row, field: str) -> tuple[str, ...]:
    values = _strings(row, field)
    items.check_texts(field, values)
    return values


def _choices(
    names: Mapping[str, _Choice], what: str, reason: ImportReason
) -> Callable[[Row, str], tuple[_Choice, ...]]:
    def read(row: Row, field: str) -> tuple[_Choice, ...]:
        values = _strings(row, field)
        unknown = [value for value in values if value.lower() not in names]
        if unknown:
            known = ", ".join(dict.fromkeys(names.values()))
            raise _FieldError(reason, f"{', '.join(map(repr, unknown))}: not {what} ({known})")
        return tuple(names[value.lower()] for value in values)

    return read


def _date(row: Row, field: str) -> date | None:
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
_READERS: Mapping[str, Callable[[Row, str], object]] = {
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
