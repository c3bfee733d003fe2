"""/api/v1/sites/{code}/windows/{number}: a site's service windows, created, changed, deleted.

A window is shown with its site (``GET /api/v1/sites/{code}``); these routes change it.
"""

from __future__ import annotations

from aiohttp import web

from control_plane import admin_bodies, window_admin
from control_plane.auth import Permission
from control_plane.inventory import WindowSpec

from . import request_schemas, schemas
from .admin import Handler, by_method, created, json_object, no_content, refusals
from .auth import PRINCIPAL, ApiRoute

WINDOW = "/api/v1/sites/{code}/windows/{number}"
ROUTES = (
    ApiRoute(
        "POST",
        WINDOW,
        Permission.SITES_WRITE,
        "create a window of a site, with the departments it serves",
        answer=schemas.Window,
        status=201,
        body=request_schemas.WindowFields,
        conflict="the site has a window of that number",
    ),
    ApiRoute(
        "PATCH",
        WINDOW,
        Permission.SITES_WRITE,
        "change a window's name or the departments it serves",
        answer=schemas.Window,
        body=request_schemas.WindowFields,
    ),
    ApiRoute(
        "DELETE",
        WINDOW,
        Permission.SITES_WRITE,
        "delete a window; 409 while devices or staff are bound to it",
        status=204,
        conflict="devices or staff are bound to the window",
    ),
)


def _spec(request: web.Request, body: dict[str, object]) -> WindowSpec:
    return admin_bodies.window(request.match_info["code"], request.match_info["number"], body)


@refusals
async def create_window(request: web.Request) -> web.Response:
    spec = _spec(request, await json_object(request))
    return created(await window_admin.create_window(request[PRINCIPAL], spec))


@refusals
async def update_window(request: web.Request) -> web.Response:
    body = await json_object(request)
    admin_bodies.nothing_to_change(body)
    spec = _spec(request, body)
    return web.json_response(await window_admin.update_window(request[PRINCIPAL], spec))


@refusals
async def delete_window(request: web.Request) -> web.Response:
    code, number = request.match_info["code"], request.match_info["number"]
    await window_admin.delete_window(request[PRINCIPAL], code, number)
    return no_content()


def handlers() -> dict[str, Handler]:
    return {
        WINDOW: by_method({"POST": create_window, "PATCH": update_window, "DELETE": delete_window}),
    }
