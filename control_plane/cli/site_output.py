"""How ``termfleet sites show`` and ``sites tree`` print for people. Pure.

``--json`` prints what the API answered instead (``sites tree --json`` nests each node's
``children_nodes``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

INDENT = "  "


def site_lines(site: Mapping[str, Any]) -> list[str]:
    """A site as aligned ``field  value`` lines, its windows left to a table."""
    holidays = ", ".join(f"{day} {spans}" for day, spans in site["holidays"].items())
    fields = [
        ("code", site["code"]),
        ("name", site["name"]),
        ("level", site["level"]),
        ("node", f"{site['node']} ({site['node_name']})"),
        ("path", " / ".join(site["path"])),
        ("address", site["address"] or "-"),
        ("hours", site["hours"]),
        ("holidays", holidays or "-"),
        ("devices", site["devices"]),
        ("staff", site["staff"]),
    ]
    width = max(len(name) for name, _ in fields)
    return [f"{name.ljust(width)}  {value}" for name, value in fields]


def window_rows(site: Mapping[str, Any]) -> list[dict[str, Any]]:
    names = {d["code"]: d["name"] for d in site["departments"]}
    return [
        {
            "number": window["number"],
            "name": window["name"] or "-",
            "departments": ", ".join(f"{c} ({names.get(c, c)})" for c in window["departments"])
            or "-",
        }
        for window in site["windows"]
    ]


def tree_lines(nodes: Sequence[Mapping[str, Any]], depth: int = 0) -> Iterator[str]:
    """Each node indented below its parent: ``code  name  (level, N sites)``."""
    for node in nodes:
        sites = node["sites"]
        counts = f"{node['level']}, {sites} site{'' if sites == 1 else 's'}"
        yield f"{INDENT * depth}{node['code']}  {node['name']}  ({counts})"
        yield from tree_lines(node.get("children_nodes", []), depth + 1)
