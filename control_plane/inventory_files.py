"""Reading import files into an ``Inventory``: CSV tables, the JSON document, demo districts.

A CSV file holds one table, told by its header (``TABLE_MARKERS``); a JSON file holds any of
the tables as lists under their names. A JSON file whose sites carry ``windows`` or
``terminals`` is a demo district (``edge/simulator/data/``) and is read as one: its sites,
their numbered windows and the terminals the simulator runs there, with the same device ids.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import inventory
from .inventory import NODES, TABLES, InventoryError, Table
from .inventory_set import Inventory

# The column that tells a CSV file's table, in the order they are looked for; a header with
# none of them and only code and name is the departments table.
TABLE_MARKERS = (
    ("device_id", inventory.DEVICES),
    ("number", inventory.WINDOWS),
    ("node", inventory.SITES),
    ("parent", NODES),
)
READERS: dict[str, Callable[[Mapping[str, object], str], inventory.Spec]] = {
    NODES.name: inventory.node,
    inventory.DEPARTMENTS.name: inventory.department,
    inventory.SITES.name: inventory.site,
    inventory.WINDOWS.name: inventory.window,
    inventory.DEVICES.name: inventory.device,
}
JSON_KEYS = frozenset({"note", *(table.name for table in TABLES)})
# Device id prefixes of the simulator's terminals (edge/simulator/district.py).
DISTRICT_PREFIXES = {
    "kiosk": "kiosk",
    "review_pad": "pad",
    "station_pc": "station",
    "booth": "booth",
}
DISTRICT_SITE_KEYS = frozenset({"code", "name", "level", "parent", "hours", "windows", "terminals"})
DISTRICT_KEYS = frozenset({"name", "note", "jurisdiction", "sites", "review_pad_per_window"})


def read(path: Path) -> Inventory:
    """The rows of one file, each checked on its own (``Inventory.check`` checks across rows)."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM: CSV saved by Excel
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(path.name, None, f"cannot read: {exc}") from None
    if path.suffix.lower() == ".csv":
        return read_csv(text, path.name)
    if path.suffix.lower() == ".json":
        return read_json(text, path.name)
    raise InventoryError(path.name, None, "not a .csv or .json file")


def read_csv(text: str, name: str) -> Inventory:
    reader = csv.DictReader(text.splitlines(keepends=True), restval="")
    header = reader.fieldnames or []
    table = _table_of(header, name)
    result = Inventory()
    for values in reader:
        where = f"{name} line {reader.line_num}"
        if None in values:
            raise InventoryError(where, None, f"more cells than the {len(header)} columns")
        _add(result, table, values, where)
    return result


def read_json(text: str, name: str) -> Inventory:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{name} line {exc.lineno}"
        raise InventoryError(where, None, f"not JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise InventoryError(name, None, "must be a JSON object of tables")
    if _is_district(data):
        return read_district(data, name)
    unknown = sorted(set(data) - JSON_KEYS)
    if unknown:
        msg = f"unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(JSON_KEYS))}"
        raise InventoryError(name, None, msg)
    result = Inventory()
    for table in TABLES:
        for where, values in _objects(data, table.name, name):
            _add(result, table, values, where)
    return result


def read_district(data: Mapping[str, Any], name: str) -> Inventory:
    """A demo district: its tree, sites with numbered windows, and the simulator's terminals."""
    unknown = sorted(set(data) - DISTRICT_KEYS)
    if unknown:
        raise InventoryError(name, None, f"unknown key(s) {', '.join(unknown)} in a district")
    result = Inventory()
    for where, values in _objects(data, "jurisdiction", name):
        _add(result, NODES, values, where)
    pads = data.get("review_pad_per_window") is True
    for where, values in _objects(data, "sites", name):
        _add_district_site(result, values, where, pads=pads)
    return result


def _add_district_site(
    result: Inventory, values: Mapping[str, Any], where: str, *, pads: bool
) -> None:
    unknown = sorted(set(values) - DISTRICT_SITE_KEYS)
    if unknown:
        raise InventoryError(
            where, None, f"unknown field(s) {', '.join(unknown)} in a district site"
        )
    site = {k: values.get(k) for k in ("code", "name", "level", "hours")}
    spec = inventory.site({**site, "node": values.get("parent")}, where)
    result.sites.append(spec)
    windows, terminals = values.get("windows", 0), values.get("terminals", {})
    if not isinstance(windows, int) or windows < 0:
        raise InventoryError(where, "windows", "must be a number of windows")
    if not isinstance(terminals, dict):
        raise InventoryError(where, "terminals", "must map a terminal kind to a count")
    numbers = [f"{n:02d}" for n in range(1, windows + 1)]
    result.windows += [inventory.window({"site": spec.code, "number": n}, where) for n in numbers]
    for kind, count in terminals.items():
        if kind not in DISTRICT_PREFIXES or not isinstance(count, int):
            raise InventoryError(where, "terminals", f"{kind!r}: {count!r} is not a kind → count")
        result.devices += [
            _district_device(
                f"{DISTRICT_PREFIXES[kind]}-{spec.code}-{n:02d}", kind, spec.code, "", where
            )
            for n in range(1, count + 1)
        ]
    if pads:
        result.devices += [
            _district_device(f"pad-{spec.code}-{n}", "review_pad", spec.code, n, where)
            for n in numbers
        ]


def _district_device(
    device_id: str, kind: str, site: str, window: str, where: str
) -> inventory.DeviceSpec:
    values = {"device_id": device_id, "kind": kind, "site": site, "window": window}
    return inventory.device(values, where)


def _is_district(data: Mapping[str, Any]) -> bool:
    sites = data.get("sites")
    return isinstance(sites, list) and any(
        isinstance(site, dict) and ("windows" in site or "terminals" in site) for site in sites
    )


def _objects(data: Mapping[str, Any], key: str, name: str) -> list[tuple[str, Mapping[str, Any]]]:
    rows = data.get(key, [])
    if not isinstance(rows, list):
        raise InventoryError(name, None, f"{key} must be a list of objects")
    result: list[tuple[str, Mapping[str, Any]]] = []
    for index, row in enumerate(rows):
        where = f"{name} {key}[{index}]"
        if not isinstance(row, dict):
            raise InventoryError(where, None, "must be an object")
        label = row.get("device_id") or row.get("code")
        if isinstance(label, str):
            where = f"{where} ({label})"
        result.append((where, row))
    return result


def _add(result: Inventory, table: Table, values: Mapping[str, object], where: str) -> None:
    result.add(READERS[table.name](values, where))


def _table_of(header: Sequence[str], name: str) -> Table:
    if not header:
        raise InventoryError(name, None, "empty: a CSV file starts with its header")
    where = f"{name} line 1"
    duplicates = sorted({column for column in header if header.count(column) > 1})
    if duplicates:
        raise InventoryError(where, None, f"column(s) {', '.join(duplicates)} twice")
    for marker, table in TABLE_MARKERS:
        if marker in header:
            return table
    if set(header) <= set(inventory.DEPARTMENTS.columns):
        return inventory.DEPARTMENTS
    hint = ", ".join(f"{marker} ({table.name})" for marker, table in TABLE_MARKERS)
    msg = f"which table? the header needs a column {hint}, or only code,name (departments)"
    raise InventoryError(where, None, msg)
