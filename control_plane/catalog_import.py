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
The tables and the reader of each field are in ``catalog_fields``; this module finds the rows.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Mapping, Sequence
from datetime import datetime

import msgspec

from edge.catalog.items import Catalog, CatalogError, CatalogErrorReason

from .catalog_fields import (
    CHANNEL_NAMES,
    DATE,
    HEADERS,
    LIST_SEPARATOR,
    PERIPHERAL_NAMES,
    REQUIRED,
    ImportReason,
    Problem,
    Row,
    read_item,
)

__all__ = [
    "CHANNEL_NAMES",
    "DATE",
    "HEADERS",
    "LIST_SEPARATOR",
    "MAX_PROBLEMS_IN_MESSAGE",
    "PERIPHERAL_NAMES",
    "REQUIRED",
    "CatalogImportError",
    "ImportReason",
    "Problem",
    "parse_catalog_csv",
    "parse_catalog_json",
]

MAX_PROBLEMS_IN_MESSAGE = 20
"""The error's message lists this many problems; ``problems`` holds them all."""


class CatalogImportError(ValueError):
    """A file that does not import; ``problems`` lists them all, ``reason`` is the first's."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        self.reason = self.problems[0].reason
        shown = [str(problem) for problem in self.problems[:MAX_PROBLEMS_IN_MESSAGE]]
        if len(self.problems) > MAX_PROBLEMS_IN_MESSAGE:
            shown.append(f"… and {len(self.problems) - MAX_PROBLEMS_IN_MESSAGE} more")
        super().__init__("\n".join(shown))


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
    rows: Sequence[Row],
    problems: list[Problem],
    catalog_id: str,
    version: int,
    published_at: datetime | None,
) -> Catalog:
    first_place: dict[str, str] = {}
    parsed = []
    for row in rows:
        if (item := read_item(row, problems)) is None:
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


def _csv_rows(text: str, problems: list[Problem]) -> list[Row]:
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
) -> Row | None:
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
    return Row(values, columns, line=line)


def _json_rows(text: str, problems: list[Problem]) -> list[Row]:
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
            rows.append(Row(fields, columns, item=index))
    return rows
