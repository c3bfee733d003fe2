"""Service windows (窗口) of a site through the API: create, change, delete, by site and number.

The site is named in the URL, so a site outside the token's scope is a 404 (``visible_site``).
A window serves the departments it lists, exactly (综合窗口 serve several). Every change writes
the audit log, with the window's site, in its own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from . import audit
from .admin_errors import ALREADY_EXISTS, IN_USE, ConflictError, InvalidFieldError, NotFoundError
from .auth import Principal
from .db.models import Department, Device, ServiceWindow, Site, WindowDepartment
from .db.staff_models import Staff
from .inventory import NUMBER as WINDOW_NUMBER
from .inventory import WindowSpec
from .scope_lookup import could_be, visible_site
from .site_views import window_audit_view, window_view


async def create_window(principal: Principal, spec: WindowSpec) -> dict[str, Any]:
    async with in_transaction() as connection:
        site, node = await visible_site(principal, spec.site)
        exists = ConflictError(f"site {site.code} has a window {spec.number}", ALREADY_EXISTS)
        if await ServiceWindow.exists(site_id=site.id, number=spec.number):
            raise exists
        departments = await _departments(spec.departments or ())
        try:
            window = await ServiceWindow.create(site=site, number=spec.number, name=spec.name or "")
        except IntegrityError:  # created meanwhile by another request
            raise exists from None
        await WindowDepartment.bulk_create(
            [WindowDepartment(window_id=window.id, department_id=d.id) for d in departments],
            using_db=connection,
        )
        view = window_view(window, [d.code for d in departments])
        await audit.record(
            "window.create",
            principal.actor,
            "window",
            f"{site.code}/{window.number}",
            after=window_audit_view(site.code, view),
            scope_path=node.path,
            using_db=connection,
        )
    return view


async def update_window(principal: Principal, spec: WindowSpec) -> dict[str, Any]:
    """Change a window's name, or the departments it serves (the list replaces the old one)."""
    async with in_transaction() as connection:
        site, node = await visible_site(principal, spec.site)
        window = await _window(site, spec.number)
        served = await _served(window)
        before = window_view(window, served)
        if spec.name is not None:
            window.name = spec.name
            await window.save(update_fields=["name"], using_db=connection)
        if spec.departments is not None:
            departments = await _departments(spec.departments)
            served = await _replace_departments(window, departments, connection)
        after = window_view(window, served)
        if after != before:
            await audit.record(
                "window.update",
                principal.actor,
                "window",
                f"{site.code}/{window.number}",
                before=window_audit_view(site.code, before),
                after=window_audit_view(site.code, after),
                scope_path=node.path,
                using_db=connection,
            )
    return after


async def delete_window(principal: Principal, site_code: str, number: str) -> None:
    """Delete a window that no device or member of staff is bound to."""
    async with in_transaction() as connection:
        site, node = await visible_site(principal, site_code)
        window = await _window(site, number)
        devices = await Device.filter(window_id=window.id).count()
        staff = await Staff.filter(window_id=window.id).count()
        if devices or staff:
            msg = (
                f"window {number} of site {site.code} cannot be deleted: {devices} device(s) and"
                f" {staff} member(s) of staff are bound to it; move them first"
            )
            raise ConflictError(msg, IN_USE)
        before = window_view(window, await _served(window))
        try:
            await window.delete(using_db=connection)
        except IntegrityError:  # bound meanwhile
            msg = f"window {number} of site {site.code} came into use while being deleted"
            raise ConflictError(msg, IN_USE) from None
        await audit.record(
            "window.delete",
            principal.actor,
            "window",
            f"{site.code}/{number}",
            before=window_audit_view(site.code, before),
            scope_path=node.path,
            using_db=connection,
        )


async def _window(site: Site, number: str) -> ServiceWindow:
    window = None
    if could_be(WINDOW_NUMBER, number):
        window = await ServiceWindow.get_or_none(site_id=site.id, number=number)
    if window is None:
        msg = f"site {site.code} has no window {number!r}"
        raise NotFoundError(msg)
    return window


async def _departments(codes: Sequence[str]) -> list[Department]:
    found = await Department.filter(code__in=list(codes))
    missing = sorted(set(codes) - {d.code for d in found})
    if missing:
        raise InvalidFieldError(field="departments", problem=f"unknown: {', '.join(missing)}")
    return found


async def _served(window: ServiceWindow) -> list[str]:
    codes = await WindowDepartment.filter(window_id=window.id).values_list(
        "department__code", flat=True
    )
    return [str(code) for code in codes]


async def _replace_departments(
    window: ServiceWindow, departments: list[Department], connection: BaseDBAsyncClient
) -> list[str]:
    await WindowDepartment.filter(window_id=window.id).using_db(connection).delete()
    await WindowDepartment.bulk_create(
        [WindowDepartment(window_id=window.id, department_id=d.id) for d in departments],
        using_db=connection,
    )
    return [d.code for d in departments]
