"""/api/v1/catalogs: the service-item catalogs (事项清单) the content repository holds.

A catalog arrives as a signed package of kind catalog (``POST /api/v1/packages``), whose items
the repository indexes at upload (``catalog_store``); these routes read that index. Which
terminals hold which catalog is a rollout's business; what each can serve now is in its health
(``GET /api/v1/devices/{device_id}``, ``health.items``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web

from control_plane import catalog_store
from control_plane.auth import Permission
from edge.catalog.items import DEPARTMENT_CODE, ServiceChannel, ServiceItem
from edge.content.manifest import NAME_PATTERN

from .admin import cursor_after, encode_cursor, only_parameters, page_response, refusals
from .auth import ApiRoute
from .errors import invalid_parameter
from .params import choice, limit_param
from .request_schemas import Paged, exactly
from .schemas import Cursor, Schema

CATALOGS = "/api/v1/catalogs"
EDITION = "/api/v1/catalogs/{name}/{version}"
MAX_VERSION = 2**63 - 1
"""The largest version the repository keeps (a BIGINT)."""
CHANNELS = frozenset(channel.value for channel in ServiceChannel if channel != "unknown")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CatalogName = Annotated[
    str, msgspec.Meta(pattern=exactly(NAME_PATTERN), description="a catalog's (package's) name")
]
CatalogVersion = Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)]


# --- shapes, for the OpenAPI document -----------------------------------------------------------


class CatalogVersionView(Schema):
    """One version of a catalog: its item count and the package that holds it."""

    version: int
    item_count: int
    published_at: Annotated[
        datetime | None, msgspec.Meta(description="when it was imported and signed")
    ]
    sha256: Annotated[str, msgspec.Meta(description="of its package file (/api/v1/packages)")]
    uploaded_at: datetime
    uploaded_by: str


class CatalogSummary(Schema):
    """A catalog with every version the repository holds, oldest first."""

    name: str
    latest_version: int
    latest_item_count: int
    versions: list[CatalogVersionView]


class CatalogPage(Schema):
    items: list[CatalogSummary]
    next_cursor: Cursor


class CatalogEditionPage(CatalogVersionView):
    """One version of a catalog and a page of its items in code order."""

    name: str
    items: list[ServiceItem]
    next_cursor: Cursor


class CatalogItemParameters(Paged):
    department: Annotated[str, msgspec.Meta(pattern=exactly(DEPARTMENT_CODE))] | None = None
    channel: Annotated[str, msgspec.Meta(pattern=exactly("|".join(sorted(CHANNELS))))] | None = None


ROUTES = (
    ApiRoute(
        "GET",
        CATALOGS,
        Permission.CONTENT_READ,
        "the service-item catalogs the content repository holds, by name: each version with"
        " its item count",
        answer=CatalogPage,
        query=Paged,
    ),
    ApiRoute(
        "GET",
        EDITION,
        Permission.CONTENT_READ,
        "one version of a catalog and its items in code order: `?department=`, `?channel=`",
        answer=CatalogEditionPage,
        query=CatalogItemParameters,
    ),
)


def handlers() -> dict[str, Handler]:
    return {CATALOGS: refusals(list_catalogs), EDITION: refusals(show_edition)}


async def list_catalogs(request: web.Request) -> web.Response:
    only_parameters(request, ())
    limit = limit_param(request)
    page = await catalog_store.listed(after=cursor_after(request, str), limit=limit)
    return page_response(page)


async def show_edition(request: web.Request) -> web.Response:
    only_parameters(request, {"department", "channel"})
    name, version = _edition_key(request)
    limit = limit_param(request)
    department = request.query.get("department")
    if department is not None and not DEPARTMENT_CODE.fullmatch(department):
        msg = f"department must be a department code, not {department!r}"
        raise invalid_parameter(msg, parameter="department")
    channel = choice(request, "channel", CHANNELS)
    after = cursor_after(request, int)
    found = await catalog_store.edition(name, version)
    page = await catalog_store.items(
        found,
        department=department,
        channel=ServiceChannel(channel) if channel else None,
        after=after,
        limit=limit,
    )
    cursor = encode_cursor(page.next_after) if page.next_after is not None else None
    view = {"name": found.name, **catalog_store.edition_view(found)}
    return web.json_response({**view, "items": page.items, "next_cursor": cursor})


def _edition_key(request: web.Request) -> tuple[str, int]:
    name, version = request.match_info["name"], request.match_info["version"]
    if not re.fullmatch(NAME_PATTERN, name):
        msg = f"name must be a catalog name ({NAME_PATTERN}), not {name!r}"
        raise invalid_parameter(msg, parameter="name")
    if not (version.isascii() and version.isdigit()) or not 1 <= int(version) <= MAX_VERSION:
        msg = f"version must be a whole number from 1 to {MAX_VERSION}, not {version!r}"
        raise invalid_parameter(msg, parameter="version")
    return name, int(version)
