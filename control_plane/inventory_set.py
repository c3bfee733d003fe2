"""What one import brings: every row's spec, in file order, checked across rows. Pure.

Each row is read and checked on its own by ``inventory`` (the import format);
``inventory_files`` reads files into an ``Inventory``, ``inventory_store`` writes one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .inventory import (
    DepartmentSpec,
    DeviceSpec,
    InventoryError,
    NodeSpec,
    SiteSpec,
    Spec,
    WindowSpec,
)


@dataclass
class Inventory:
    """Everything one import brings, in file order."""

    nodes: list[NodeSpec] = field(default_factory=list)
    departments: list[DepartmentSpec] = field(default_factory=list)
    sites: list[SiteSpec] = field(default_factory=list)
    windows: list[WindowSpec] = field(default_factory=list)
    devices: list[DeviceSpec] = field(default_factory=list)

    def add(self, spec: Spec) -> None:
        match spec:
            case NodeSpec():
                self.nodes.append(spec)
            case DepartmentSpec():
                self.departments.append(spec)
            case SiteSpec():
                self.sites.append(spec)
            case WindowSpec():
                self.windows.append(spec)
            case DeviceSpec():
                self.devices.append(spec)

    def extend(self, other: Inventory) -> None:
        self.nodes += other.nodes
        self.departments += other.departments
        self.sites += other.sites
        self.windows += other.windows
        self.devices += other.devices

    def check(self) -> None:
        """Refuse duplicate rows, and cycles among the nodes (``nodes_in_order`` also does)."""
        _unique(self.nodes, lambda s: s.code, "node")
        _unique(self.departments, lambda s: s.code, "department")
        _unique(self.sites, lambda s: s.code, "site")
        _unique(self.windows, lambda s: (s.site, s.number), "window")
        _unique(self.devices, lambda s: s.device_id, "device")
        self.nodes_in_order()

    def nodes_in_order(self) -> list[NodeSpec]:
        """The nodes with every parent before its children (parents outside the file first)."""
        by_code = {spec.code: spec for spec in self.nodes}
        ordered: list[NodeSpec] = []
        state: dict[str, bool] = {}  # False: being visited; True: placed
        for spec in self.nodes:
            chain: list[NodeSpec] = []
            current: NodeSpec | None = spec
            while current is not None and current.code not in state:
                state[current.code] = False
                chain.append(current)
                current = by_code.get(current.parent) if current.parent else None
            if current is not None and state[current.code] is False:
                msg = f"parent {spec.parent} makes a cycle: a node cannot be below itself"
                raise InventoryError(spec.where, "parent", msg)
            for placed in reversed(chain):
                state[placed.code] = True
                ordered.append(placed)
        return ordered


def _unique(specs: Iterable[Spec], key: Callable[[Any], str | tuple[str, str]], what: str) -> None:
    seen: dict[str | tuple[str, str], str] = {}
    for spec in specs:
        k = key(spec)
        if k in seen:
            shown = "/".join(k) if isinstance(k, tuple) else k
            msg = f"duplicate {what} {shown} (first at {seen[k]})"
            raise InventoryError(spec.where, None, msg)
        seen[k] = spec.where
