"""/api/v1/staff: staff (工作人员), scoped by the site they work at (docs/api-sites.md)."""

from __future__ import annotations

from aiohttp import web

from control_plane import admin_bodies, staff
from control_plane.auth import Permission

from . import request_schemas, schemas
from .admin import (
    Handler,
    by_method,
    created,
    cursor_after,
    flag,
    json_object,
    only_parameters,
    page_response,
    refusals,
)
from .auth import PRINCIPAL, ApiRoute
from .params import limit_param

STAFF = "/api/v1/staff"
MEMBER = "/api/v1/staff/{number}"
ROUTES = (
    ApiRoute(
        "GET",
        STAFF,
        Permission.SITES_READ,
        "the staff of the sites in scope: `?site=`, `?node=`, `?department=`, `?active=`",
        answer=schemas.StaffPage,
        query=request_schemas.StaffListParameters,
    ),
    ApiRoute(
        "POST",
        STAFF,
        Permission.SITES_WRITE,
        "add a member of staff at a site in scope",
        answer=schemas.Staff,
        status=201,
        body=request_schemas.NewStaff,
        conflict="a member of staff with the number exists",
    ),
    ApiRoute(
        "GET",
        MEMBER,
        Permission.SITES_READ,
        "a member of staff, by staff number",
        answer=schemas.Staff,
    ),
    ApiRoute(
        "PATCH",
        MEMBER,
        Permission.SITES_WRITE,
        "change a member of staff: name, department, site, window, active",
        answer=schemas.Staff,
        body=request_schemas.StaffChange,
    ),
)


@refusals
async def list_staff(request: web.Request) -> web.Response:
    only_parameters(request, {"site", "node", "department", "active"})
    page = await staff.list_staff(
        request[PRINCIPAL],
        site=request.query.get("site"),
        node=request.query.get("node"),
        department=request.query.get("department"),
        active=flag(request, "active"),
        after=cursor_after(request, str),
        limit=limit_param(request),
    )
    return page_response(page)


@refusals
async def add_staff(request: web.Request) -> web.Response:
    spec = admin_bodies.staff(await json_object(request))
    return created(await staff.create_staff(request[PRINCIPAL], spec))


@refusals
async def show_staff(request: web.Request) -> web.Response:
    view = await staff.staff_detail(request[PRINCIPAL], request.match_info["number"])
    return web.json_response(view)


@refusals
async def change_staff(request: web.Request) -> web.Response:
    changes = admin_bodies.staff_changes(await json_object(request))
    number = request.match_info["number"]
    return web.json_response(await staff.update_staff(request[PRINCIPAL], number, changes))


def handlers() -> dict[str, Handler]:
    return {
        STAFF: by_method({"GET": list_staff, "POST": add_staff}),
        MEMBER: by_method({"GET": show_staff, "PATCH": change_staff}),
    }
