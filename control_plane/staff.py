"""Staff (工作人员) through the API: list, show, add and change, scoped by the site they work at.

A member of staff lies where their site does: a town's token sees and changes the staff of the
town's sites, and may move them only to sites it also sees. Staff are deactivated
(``active: false``), never deleted. Every change writes the audit log in its own transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Subquery
from tortoise.transactions import in_transaction

from . import audit
from .admin_bodies import STAFF_NUMBER, StaffSpec
from .admin_errors import ALREADY_EXISTS, ConflictError, InvalidFieldError, NotFoundError
from .auth import Principal
from .db.models import Department, ServiceWindow, Site
from .db.staff_models import Staff
from .inventory import NAME as DEPARTMENT_CODE
from .inventory import NUMBER as WINDOW_NUMBER
from .paging import Page, page_of
from .scope_lookup import could_be, placement_site, visible_node, visible_site, visible_site_ids
from .site_views import common_path, staff_view
from .sites import sites_under

_RELATED = ("department", "site__node", "window")


def _view(staff: Staff) -> dict[str, Any]:
    window = staff.window.number if staff.window else None
    return staff_view(staff, department=staff.department.code, site=staff.site.code, window=window)


async def list_staff(  # noqa: PLR0913 - one parameter per filter
    principal: Principal,
    *,
    site: str | None = None,
    node: str | None = None,
    department: str | None = None,
    active: bool | None = None,
    after: str | None = None,
    limit: int,
) -> Page[str]:
    """The staff in scope by staff number, filtered by site, subtree, department, activity."""
    query = Staff.all()
    in_scope = visible_site_ids(principal)
    if in_scope is not None:
        query = query.filter(site_id__in=in_scope)
    if node is not None:
        subtree = sites_under((await visible_node(principal, node)).path)
        query = query.filter(site_id__in=Subquery(subtree.values("id")))
    if site is not None:
        query = query.filter(site_id=(await visible_site(principal, site))[0].id)
    if department is not None:
        found = await _department_or_none(department)
        if found is None:
            msg = f"no department has the code {department!r}"
            raise NotFoundError(msg)
        query = query.filter(department_id=found.id)
    if active is not None:
        query = query.filter(active=active)
    if after is not None:
        query = query.filter(number__gt=after)
    rows = await query.order_by("number").limit(limit + 1).select_related(*_RELATED)
    return page_of(rows, limit, lambda staff: staff.number, _view)


async def staff_detail(principal: Principal, number: str) -> dict[str, Any]:
    return _view(await _visible(principal, number))


async def create_staff(
    principal: Principal, spec: StaffSpec, now: datetime | None = None
) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    async with in_transaction() as connection:
        site, node = await placement_site(principal, spec.site, "site")
        department = await _department(spec.department)
        window = await _window_at(site, spec.window)
        exists = ConflictError(f"a member of staff has the number {spec.number}", ALREADY_EXISTS)
        if await Staff.exists(number=spec.number):
            raise exists
        try:
            staff = await Staff.create(
                number=spec.number,
                name=spec.name,
                department=department,
                site=site,
                window=window,
                active=spec.active,
                created_at=now,
                updated_at=now,
            )
        except IntegrityError:  # created meanwhile by another request
            raise exists from None
        view = _view(staff)
        await audit.record(
            "staff.create",
            principal.actor,
            "staff",
            staff.number,
            after=view,
            scope_path=node.path,
            using_db=connection,
        )
    return view


async def update_staff(
    principal: Principal, number: str, changes: dict[str, object], now: datetime | None = None
) -> dict[str, Any]:
    """Change a member of staff.

    Moving them to another site unbinds their window, unless the change names one there.
    """
    async with in_transaction() as connection:
        staff = await _visible(principal, number)
        before, old_path = _view(staff), staff.site.node.path
        await _apply(principal, staff, changes)
        after = _view(staff)
        if after == before:
            return after
        staff.updated_at = now or datetime.now(UTC)
        after = _view(staff)
        await staff.save(using_db=connection)
        await audit.record(
            "staff.update",
            principal.actor,
            "staff",
            staff.number,
            before=before,
            after=after,
            scope_path=common_path(old_path, staff.site.node.path),
            using_db=connection,
        )
    return after


async def _apply(principal: Principal, staff: Staff, changes: dict[str, object]) -> None:
    if "name" in changes:
        staff.name = str(changes["name"])
    if "active" in changes:
        staff.active = bool(changes["active"])
    if "department" in changes:
        staff.department = await _department(str(changes["department"]))
    if "site" in changes and changes["site"] != staff.site.code:
        staff.site, _ = await placement_site(principal, str(changes["site"]), "site")
        staff.window = None  # a window belongs to the site being left
    if "window" in changes:
        number = changes["window"]
        staff.window = await _window_at(staff.site, str(number) if number is not None else None)


async def _visible(principal: Principal, number: str) -> Staff:
    staff = None
    if could_be(STAFF_NUMBER, number):
        staff = await Staff.get_or_none(number=number).select_related(*_RELATED)
    if staff is None or not principal.sees(staff.site.node.path):
        msg = f"no member of staff has the number {number!r}"
        raise NotFoundError(msg)
    return staff


async def _department_or_none(code: str) -> Department | None:
    return await Department.get_or_none(code=code) if could_be(DEPARTMENT_CODE, code) else None


async def _department(code: str) -> Department:
    department = await _department_or_none(code)
    if department is None:
        raise InvalidFieldError(field="department", problem=f"no department has the code {code!r}")
    return department


async def _window_at(site: Site, number: str | None) -> ServiceWindow | None:
    if number is None:
        return None
    window = None
    if could_be(WINDOW_NUMBER, number):
        window = await ServiceWindow.get_or_none(site_id=site.id, number=number)
    if window is None:
        raise InvalidFieldError(
            field="window", problem=f"site {site.code} has no window {number!r}"
        )
    return window
