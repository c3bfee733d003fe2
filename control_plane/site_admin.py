"""Sites (halls and stations) and departments through the API: list, show, create, change, delete.

Every function takes the asking token's principal and keeps to its scope (``scope_lookup``);
every change writes the audit log in its own transaction, and only when something changed.
A site's fields are checked by the import's reader (``admin_bodies.site``), so opening hours
go through ``edge.schedule``'s parser, the one presence uses. Windows: ``window_admin``.
"""

from __future__ import annotations

from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q, Subquery
from tortoise.transactions import in_transaction

from . import admin_bodies, audit, jurisdiction
from .admin_errors import ALREADY_EXISTS, IN_USE, ConflictError, InvalidFieldError
from .auth import Principal
from .db.models import Department, Device, JurisdictionNode, ServiceWindow, Site, WindowDepartment
from .db.staff_models import Staff
from .inventory import DepartmentSpec, SiteSpec
from .jurisdiction import Level
from .paging import Page, page_of
from .scope_lookup import (
    placement_node,
    require_whole_tree,
    visible_node,
    visible_site,
    visible_sites,
)
from .site_views import common_path, department_view, site_view, window_view
from .sites import sites_under

MAX_QUERY_LENGTH = 100


async def list_sites(  # noqa: PLR0913 - one parameter per filter
    principal: Principal,
    *,
    node: str | None = None,
    level: Level | None = None,
    text: str | None = None,
    after: str | None = None,
    limit: int,
) -> Page[str]:
    """The sites in scope, by code: below ``node``, at ``level``, ``text`` in code/name/address."""
    if node is not None:
        query = sites_under((await visible_node(principal, node)).path)
    else:
        query = visible_sites(principal)
    if level is not None:
        query = query.filter(level=level.value)
    if text:
        query = query.filter(
            Q(code__icontains=text) | Q(name__icontains=text) | Q(address__icontains=text)
        )
    if after is not None:
        query = query.filter(code__gt=after)
    rows = await query.order_by("code").limit(limit + 1).select_related("node")
    return page_of(rows, limit, lambda site: site.code, lambda s: site_view(s, s.node.code))


async def site_detail(principal: Principal, code: str) -> dict[str, Any]:
    """A site with its node, windows (and the departments they serve) and what is placed there."""
    site, node = await visible_site(principal, code)
    windows = await ServiceWindow.filter(site_id=site.id).order_by("number")
    links = await WindowDepartment.filter(window_id__in=[w.id for w in windows]).values_list(
        "window_id", "department__code", "department__name"
    )
    served: dict[int, list[str]] = {}
    names: dict[str, str] = {}
    for window_id, department_code, department_name in links:
        served.setdefault(int(window_id), []).append(str(department_code))
        names[str(department_code)] = str(department_name)
    return {
        **site_view(site, node.code),
        "node_name": node.name,
        "path": jurisdiction.codes(node.path),
        "windows": [window_view(w, served.get(w.id, [])) for w in windows],
        "departments": [{"code": c, "name": names[c]} for c in sorted(names)],
        "devices": await Device.filter(site_id=site.id).count(),
        "staff": await Staff.filter(site_id=site.id).count(),
    }


async def create_site(principal: Principal, spec: SiteSpec) -> dict[str, Any]:
    async with in_transaction() as connection:
        node = await placement_node(principal, spec.node, "node")
        _check_level(spec, node)
        if await Site.exists(code=spec.code):
            raise _exists(spec.code)
        try:
            site = await Site.create(
                code=spec.code,
                name=spec.name,
                level=spec.level.value,
                node=node,
                hours=spec.hours,
                address=spec.address or "",
                holidays=spec.holidays or {},
            )
        except IntegrityError:  # created meanwhile by another request
            raise _exists(spec.code) from None
        view = site_view(site, node.code)
        await audit.record(
            "site.create",
            principal.actor,
            "site",
            site.code,
            after=view,
            scope_path=node.path,
            using_db=connection,
        )
    return view


async def update_site(
    principal: Principal, code: str, changes: dict[str, object]
) -> dict[str, Any]:
    """Change a site's fields; the result is checked whole, as an import row would be.

    Moving it to another node needs that node in scope too.
    """
    async with in_transaction() as connection:
        site, node = await visible_site(principal, code)
        before = site_view(site, node.code)
        spec = admin_bodies.site({**before, **changes})
        target = node
        if spec.node != node.code:
            target = await placement_node(principal, spec.node, "node")
        _check_level(spec, target)
        site.name, site.level, site.node_id = spec.name, spec.level.value, target.id
        site.hours, site.address = spec.hours, spec.address or ""
        site.holidays = spec.holidays or {}
        after = site_view(site, target.code)
        if after == before:
            return after
        await site.save(using_db=connection)
        await audit.record(
            "site.update",
            principal.actor,
            "site",
            site.code,
            before=before,
            after=after,
            scope_path=common_path(node.path, target.path),
            using_db=connection,
        )
    return after


async def delete_site(principal: Principal, code: str) -> None:
    """Delete a site with nobody and nothing at it; its windows go with it."""
    async with in_transaction() as connection:
        site, node = await visible_site(principal, code)
        windows = ServiceWindow.filter(site_id=site.id)
        devices = await Device.filter(
            Q(site_id=site.id) | Q(window_id__in=Subquery(windows.values("id")))
        ).count()
        staff = await Staff.filter(site_id=site.id).count()
        if devices or staff:
            msg = (
                f"site {site.code} cannot be deleted: {devices} device(s) and {staff} member(s)"
                " of staff are placed there; move them (or retire the devices) first"
            )
            raise ConflictError(msg, IN_USE)
        before = {
            **site_view(site, node.code),
            "windows": [w.number for w in await windows.order_by("number")],
        }
        try:
            await site.delete(using_db=connection)
        except IntegrityError:  # placed there meanwhile
            msg = f"site {site.code} came into use while being deleted; try again"
            raise ConflictError(msg, IN_USE) from None
        await audit.record(
            "site.delete",
            principal.actor,
            "site",
            site.code,
            before=before,
            scope_path=node.path,
            using_db=connection,
        )


def _check_level(spec: SiteSpec, node: JurisdictionNode) -> None:
    if spec.level.depth < Level(node.level).depth:
        msg = f"a {spec.level} site cannot hang off the {node.level} {node.code}"
        raise InvalidFieldError(field="level", problem=msg)


def _exists(code: str) -> ConflictError:
    return ConflictError(f"a site with the code {code} exists", ALREADY_EXISTS)


# --- departments: shared by the whole tree ------------------------------------------------------


async def list_departments(*, after: str | None, limit: int) -> Page[str]:
    query = Department.all() if after is None else Department.filter(code__gt=after)
    rows = await query.order_by("code").limit(limit + 1)
    return page_of(rows, limit, lambda d: d.code, department_view)


async def create_department(principal: Principal, spec: DepartmentSpec) -> dict[str, Any]:
    """A new department; departments serve windows everywhere, so only the whole tree adds one."""
    require_whole_tree(principal, "a department")
    async with in_transaction() as connection:
        exists = ConflictError(f"a department with the code {spec.code} exists", ALREADY_EXISTS)
        if await Department.exists(code=spec.code):
            raise exists
        try:
            department = await Department.create(code=spec.code, name=spec.name)
        except IntegrityError:
            raise exists from None
        view = department_view(department)
        await audit.record(
            "department.create",
            principal.actor,
            "department",
            department.code,
            after=view,
            using_db=connection,
        )
    return view
