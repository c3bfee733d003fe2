"""Writing an ``Inventory`` into the database: one transaction, create or update by natural key.

Nodes, departments and sites are keyed by code, windows by (site, number), devices by id.
Importing the same files twice changes nothing; a changed row is updated, a row the files do
not name is left alone. Any error rolls the whole import back and names the row at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from tortoise.models import Model
from tortoise.transactions import in_transaction

from . import jurisdiction, registry
from .db.models import Department, Device, JurisdictionNode, ServiceWindow, Site, WindowDepartment
from .inventory import (
    DepartmentSpec,
    DeviceSpec,
    InventoryError,
    NodeSpec,
    SiteSpec,
    WindowSpec,
)
from .inventory_set import Inventory
from .jurisdiction import JurisdictionError, Level

# Rows looked up per query: well under SQLite's limit of bound parameters.
LOOKUP_CHUNK = 500
ANALYZE_AFTER_ROWS = 1_000
M = TypeVar("M", bound=Model)


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def count(self, *, created: bool, changed: bool) -> None:
        if created:
            self.created += 1
        elif changed:
            self.updated += 1
        else:
            self.unchanged += 1


@dataclass
class ImportSummary:
    """What an import did (or, in a dry run, would do), per table."""

    jurisdiction: Counts = field(default_factory=Counts)
    departments: Counts = field(default_factory=Counts)
    sites: Counts = field(default_factory=Counts)
    windows: Counts = field(default_factory=Counts)
    devices: Counts = field(default_factory=Counts)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {name: asdict(counts) for name, counts in vars(self).items()}


class _DryRunError(Exception):
    """Raised at the end of a dry run to roll its transaction back."""


async def import_inventory(inventory: Inventory, *, dry_run: bool = False) -> ImportSummary:
    """Write ``inventory`` in one transaction (rolled back when ``dry_run``)."""
    inventory.check()
    summary = ImportSummary()
    try:
        async with in_transaction():
            await _nodes(inventory.nodes_in_order(), summary.jurisdiction)
            await _departments(inventory.departments, summary.departments)
            await _sites(inventory.sites, summary.sites)
            await _windows(inventory.windows, summary.windows)
            await _devices(inventory.devices, summary.devices)
            await _analyze(summary)
            if dry_run:
                _roll_back()
    except _DryRunError:
        pass
    return summary


def _roll_back() -> None:
    raise _DryRunError


# --- tables ----------------------------------------------------------------------------------


async def _nodes(specs: Sequence[NodeSpec], counts: Counts) -> None:
    wanted = {s.code for s in specs} | {s.parent for s in specs if s.parent}
    known = {n.code: n for n in await _fetch(JurisdictionNode, "code", wanted)}
    for spec in specs:
        parent = known.get(spec.parent) if spec.parent else None
        if spec.parent and parent is None:
            msg = f"unknown parent {spec.parent}: neither in this import nor in the database"
            raise InventoryError(spec.where, "parent", msg)
        if parent is not None:
            try:
                jurisdiction.check_child(Level(parent.level), spec.level)
            except JurisdictionError as exc:
                raise InventoryError(spec.where, "level", str(exc)) from None
        path = jurisdiction.path_of(parent.path if parent else None, spec.code)
        node = known.get(spec.code)
        if node is None:
            node = await JurisdictionNode.create(
                code=spec.code, name=spec.name, level=spec.level.value, parent=parent, path=path
            )
            known[spec.code] = node
            counts.count(created=True, changed=True)
            continue
        if spec.level != node.level:
            await _check_children_below(node, spec)
        # Levels deepen strictly downwards (check_child), so no node can move into its subtree.
        old_path = node.path
        changed = _assign(node, name=spec.name, level=spec.level.value, path=path)
        changed |= _assign(node, parent_id=parent.id if parent else None)
        if changed:
            await node.save()
        if old_path != path:
            await _move_subtree(old_path, path, known)
        counts.count(created=False, changed=changed)


async def _check_children_below(node: JurisdictionNode, spec: NodeSpec) -> None:
    for child in await JurisdictionNode.filter(parent_id=node.id):
        try:
            jurisdiction.check_child(spec.level, Level(child.level))
        except JurisdictionError as exc:
            msg = f"{exc}: {child.code} ({child.level}) is below {spec.code}"
            raise InventoryError(spec.where, "level", msg) from None


async def _move_subtree(old: str, new: str, known: dict[str, JurisdictionNode]) -> None:
    """Rewrite the paths below a node whose path changed from ``old`` to ``new``."""
    low, high = jurisdiction.subtree_range(old)
    for node in await JurisdictionNode.filter(path__gte=low, path__lt=high):
        node.path = new + node.path.removeprefix(old)
        await node.save(update_fields=["path"])
        if node.code in known:
            known[node.code].path = node.path


async def _departments(specs: Sequence[DepartmentSpec], counts: Counts) -> None:
    known = {d.code: d for d in await _fetch(Department, "code", {s.code for s in specs})}
    for spec in specs:
        department = known.get(spec.code)
        if department is None:
            await Department.create(code=spec.code, name=spec.name)
            counts.count(created=True, changed=True)
        elif _assign(department, name=spec.name):
            await department.save()
            counts.count(created=False, changed=True)
        else:
            counts.count(created=False, changed=False)


async def _sites(specs: Sequence[SiteSpec], counts: Counts) -> None:
    nodes = {n.code: n for n in await _fetch(JurisdictionNode, "code", {s.node for s in specs})}
    known = {s.code: s for s in await _fetch(Site, "code", {s.code for s in specs})}
    for spec in specs:
        node = nodes.get(spec.node)
        if node is None:
            msg = f"unknown node {spec.node}: neither in this import nor in the database"
            raise InventoryError(spec.where, "node", msg)
        if spec.level.depth < Level(node.level).depth:
            msg = f"a {spec.level} site cannot hang off the {node.level} {node.code}"
            raise InventoryError(spec.where, "level", msg)
        values: dict[str, Any] = {
            "name": spec.name,
            "level": spec.level.value,
            "node_id": node.id,
            "hours": spec.hours,
        }
        if spec.address is not None:
            values["address"] = spec.address
        if spec.holidays is not None:
            values["holidays"] = spec.holidays
        site = known.get(spec.code)
        if site is None:
            await Site.create(code=spec.code, **values)
            counts.count(created=True, changed=True)
            continue
        changed = _assign(site, **values)
        if changed:
            await site.save()
        counts.count(created=False, changed=changed)


async def _windows(specs: Sequence[WindowSpec], counts: Counts) -> None:
    sites = {s.code: s for s in await _fetch(Site, "code", {s.site for s in specs})}
    codes = {code for s in specs for code in s.departments or ()}
    departments = {d.code: d.id for d in await _fetch(Department, "code", codes)}
    site_ids = [s.id for s in sites.values()]
    known = {(w.site_id, w.number): w for w in await _fetch(ServiceWindow, "site_id", site_ids)}
    for spec in specs:
        site = sites.get(spec.site)
        if site is None:
            msg = f"unknown site {spec.site}: neither in this import nor in the database"
            raise InventoryError(spec.where, "site", msg)
        missing = [code for code in spec.departments or () if code not in departments]
        if missing:
            msg = f"unknown department(s) {', '.join(missing)}"
            raise InventoryError(spec.where, "departments", msg)
        window = known.get((site.id, spec.number))
        created = window is None
        if window is None:
            window = await ServiceWindow.create(site=site, number=spec.number, name=spec.name or "")
            changed = True
        else:
            changed = spec.name is not None and _assign(window, name=spec.name)
            if changed:
                await window.save()
        if spec.departments is not None:
            wanted = {departments[code] for code in spec.departments}
            changed |= await _set_departments(window, wanted)
        counts.count(created=created, changed=changed)


async def _set_departments(window: ServiceWindow, wanted: set[int]) -> bool:
    rows = await WindowDepartment.filter(window_id=window.id)
    have = {row.department_id for row in rows}
    if have == wanted:
        return False
    await WindowDepartment.filter(window_id=window.id, department_id__in=have - wanted).delete()
    for department_id in sorted(wanted - have):
        await WindowDepartment.create(window_id=window.id, department_id=department_id)
    return True


async def _devices(specs: Sequence[DeviceSpec], counts: Counts) -> None:
    sites = {s.code: s for s in await _fetch(Site, "code", {s.site for s in specs if s.site})}
    windows = {
        (w.site_id, w.number): w
        for w in await _fetch(ServiceWindow, "site_id", [s.id for s in sites.values()])
    }
    known = {
        d.device_id: d for d in await _fetch(Device, "device_id", {s.device_id for s in specs})
    }
    new: list[Device] = []
    for spec in specs:
        values: dict[str, Any] = {"kind": spec.kind.value}
        if spec.serial is not None:
            values["serial"] = spec.serial
        if spec.labels is not None:
            values["labels"] = spec.labels
        if spec.site is not None:
            values.update(_placement(spec, sites, windows))
        device = known.get(spec.device_id)
        if device is None:
            new.append(Device(device_id=spec.device_id, **values))
            counts.count(created=True, changed=True)
            continue
        changed = _assign(device, **values)
        if changed:
            await device.save(update_fields=list(values))
        counts.count(created=False, changed=changed)
    # A district's devices arrive by the thousand; one INSERT per batch, not per device.
    await Device.bulk_create(new, batch_size=LOOKUP_CHUNK)
    await registry.write_labels({s.device_id: s.labels for s in specs if s.labels is not None})


async def _analyze(summary: ImportSummary) -> None:
    """Refresh PostgreSQL's statistics of the tables after an import that grew them a lot.

    Until autovacuum gets to them, the planner takes the tables for as small as they were and
    scans them whole for every lookup: a second import of 100,000 devices right after the first
    took minutes instead of seconds, and so would the API's queries.
    """
    created = sum(counts["created"] for counts in summary.to_dict().values())
    connection = Device._meta.db  # noqa: SLF001 - tortoise's way to a model's connection
    if created < ANALYZE_AFTER_ROWS or connection.capabilities.dialect != "postgres":
        return
    for model in (JurisdictionNode, Department, Site, ServiceWindow, WindowDepartment, Device):
        await connection.execute_script(f'ANALYZE "{model._meta.db_table}"')  # noqa: SLF001


def _placement(
    spec: DeviceSpec, sites: dict[str, Site], windows: dict[tuple[int, str], ServiceWindow]
) -> dict[str, int | None]:
    if not spec.site:
        return {"site_id": None, "window_id": None}
    site = sites.get(spec.site)
    if site is None:
        msg = f"unknown site {spec.site}: neither in this import nor in the database"
        raise InventoryError(spec.where, "site", msg)
    if not spec.window:
        return {"site_id": site.id, "window_id": None}
    window = windows.get((site.id, spec.window))
    if window is None:
        msg = f"site {spec.site} has no window {spec.window}"
        raise InventoryError(spec.where, "window", msg)
    return {"site_id": site.id, "window_id": window.id}


# --- helpers ---------------------------------------------------------------------------------


async def _fetch(model: type[M], key: str, values: Iterable[object]) -> list[M]:
    """The rows whose ``key`` is one of ``values``, asked in chunks."""
    wanted = list(values)
    rows: list[M] = []
    for start in range(0, len(wanted), LOOKUP_CHUNK):
        chunk = wanted[start : start + LOOKUP_CHUNK]
        rows += await model.filter(**{f"{key}__in": chunk})
    return rows


def _assign(row: Model, **values: object) -> bool:
    """Set the values that differ; whether any did."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed
