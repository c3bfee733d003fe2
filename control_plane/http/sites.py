"""/api/v1/sites and /api/v1/departments: halls and stations, and the departments windows serve.

A change to a site (created, changed, deleted) calls ``site_changed`` after its commit, so that
the server's fleet state knows the site's hours and place in the tree at once
(``control_plane.site_cache``). Windows: ``windows.py``. docs/api-sites.md describes the routes.
"""

from __future__ import annotations

from aiohttp import web

from control_plane import admin_bodies, site_admin
from control_plane.auth import Permission
from control_plane.jurisdiction import Level
from control_plane.site_cache import SiteChanged

from . import request_schemas, schemas
from .admin import (
    Handler,
    by_method,
    created,
    cursor_after,
    json_object,
    no_content,
    only_parameters,
    page_response,
    refusals,
    text_parameter,
)
from .auth import PRINCIPAL, ApiRoute
from .params import choice, limit_param

SITES = "/api/v1/sites"
SITE = "/api/v1/sites/{code}"
DEPARTMENTS = "/api/v1/departments"
ROUTES = (
    ApiRoute(
        "GET",
        SITES,
        Permission.SITES_READ,
        "the sites in the token's scope: `?node=CODE` (subtree), `?level=`, `?q=` (text)",
        answer=schemas.SitePage,
        query=request_schemas.SiteListParameters,
    ),
    ApiRoute(
        "POST",
        SITES,
        Permission.SITES_WRITE,
        "create a site at a node in scope",
        answer=schemas.Site,
        status=201,
        body=request_schemas.NewSite,
        conflict="a site with the code exists",
    ),
    ApiRoute(
        "GET",
        SITE,
        Permission.SITES_READ,
        "a site with its opening hours, holidays, windows and the departments they serve",
        answer=schemas.SiteDetail,
    ),
    ApiRoute(
        "PATCH",
        SITE,
        Permission.SITES_WRITE,
        "change a site's name, level, node, hours, holidays or address",
        answer=schemas.Site,
        body=request_schemas.SiteChange,
    ),
    ApiRoute(
        "DELETE",
        SITE,
        Permission.SITES_WRITE,
        "delete a site and its windows; 409 while devices or staff are placed there",
        status=204,
        conflict="devices or staff are placed at the site",
    ),
    ApiRoute(
        "GET",
        DEPARTMENTS,
        Permission.SITES_READ,
        "the departments, shared by the tree",
        answer=schemas.DepartmentPage,
        query=request_schemas.Paged,
    ),
    ApiRoute(
        "POST",
        DEPARTMENTS,
        Permission.SITES_WRITE,
        "create a department (a token for the whole tree only)",
        answer=schemas.Department,
        status=201,
        body=request_schemas.NewDepartment,
        conflict="a department with the code exists",
    ),
)


@refusals
async def list_sites(request: web.Request) -> web.Response:
    only_parameters(request, {"node", "level", "q"})
    level = choice(request, "level", {level.value for level in Level})
    page = await site_admin.list_sites(
        request[PRINCIPAL],
        node=request.query.get("node"),
        level=Level(level) if level else None,
        text=text_parameter(request, "q", site_admin.MAX_QUERY_LENGTH),
        after=cursor_after(request, str),
        limit=limit_param(request),
    )
    return page_response(page)


@refusals
async def show_site(request: web.Request) -> web.Response:
    view = await site_admin.site_detail(request[PRINCIPAL], request.match_info["code"])
    return web.json_response(view)


def site_changes(site_changed: SiteChanged) -> dict[str, Handler]:
    """The handlers that change sites, each telling ``site_changed`` once it has committed."""

    @refusals
    async def create_site(request: web.Request) -> web.Response:
        spec = admin_bodies.site(await json_object(request))
        view = await site_admin.create_site(request[PRINCIPAL], spec)
        await site_changed(spec.code)
        return created(view)

    @refusals
    async def update_site(request: web.Request) -> web.Response:
        changes = admin_bodies.site_changes(await json_object(request))
        code = request.match_info["code"]
        view = await site_admin.update_site(request[PRINCIPAL], code, changes)
        await site_changed(code)
        return web.json_response(view)

    @refusals
    async def delete_site(request: web.Request) -> web.Response:
        code = request.match_info["code"]
        await site_admin.delete_site(request[PRINCIPAL], code)
        await site_changed(code)
        return no_content()

    return {"POST": create_site, "PATCH": update_site, "DELETE": delete_site}


@refusals
async def list_departments(request: web.Request) -> web.Response:
    only_parameters(request, set())
    page = await site_admin.list_departments(
        after=cursor_after(request, str), limit=limit_param(request)
    )
    return page_response(page)


@refusals
async def create_department(request: web.Request) -> web.Response:
    spec = admin_bodies.department(await json_object(request))
    return created(await site_admin.create_department(request[PRINCIPAL], spec))


def handlers(site_changed: SiteChanged) -> dict[str, Handler]:
    changes = site_changes(site_changed)
    return {
        SITES: by_method({"GET": list_sites, "POST": changes["POST"]}),
        SITE: by_method({"GET": show_site, "PATCH": changes["PATCH"], "DELETE": changes["DELETE"]}),
        DEPARTMENTS: by_method({"GET": list_departments, "POST": create_department}),
    }
