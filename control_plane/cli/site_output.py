"""How ``termfleet sites show/add/set`` and ``sites tree`` print for people. Pure.

``--json`` prints what the API answered instead (``sites tree --json`` nests each node's
``children_nodes``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .site_hours import holidays_text

INDENT = "  "


def site_lines(site: Mapping[str, Any]) -> list[str]:
    """A site as aligned ``field  value`` lines: as shown, or as a change answered it.

    Shown (``sites show``), it has its node's name, its path and its counts too; its windows
    are left to a table. Holidays read as ``--holiday`` and the import write them.
    """
    node = site["node"] + (f" ({site['node_name']})" if "node_name" in site else "")
    fields: list[tuple[str, object]] = [
        ("code", site["code"]),
        ("name", site["name"]),
        ("level", site["level"]),
        ("node", node),
    ]
    if "path" in site:
        fields.append(("path", " / ".join(site["path"])))
    fields += [
        ("address", site["address"] or "-"),
        ("hours", site["hours"]),
        ("holidays", holidays_text(site["holidays"]) or "-"),
    ]
    fields += [(name, site[name]) for name in ("devices", "staff") if name in site]
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
