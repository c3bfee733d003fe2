"""/api/v1/devices: the device registry, filtered, scoped, with live presence (docs/api-devices.md).

Reads and changes alike see only the devices in the token's scope: a device outside it is a 404,
as if it did not exist, so that a scope does not learn which devices lie beyond it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial

from aiohttp import web

from control_plane import device_queries
from control_plane.auth import Permission
from control_plane.device_filters import QueryError, encode_cursor, parse_query
from control_plane.fleet import FleetState
from control_plane.site_cache import SiteChanged

from . import devices_changes, request_schemas, schemas
from .auth import PRINCIPAL, ApiRoute
from .device_views import detail_view, device_view, live_state, matches_presence
from .errors import ApiError, invalid_parameter, unknown_names

DEVICES = "/api/v1/devices"
DEVICE = "/api/v1/devices/{device_id}"
DEFAULT_RECORDS = 20
MAX_RECORDS = 100
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTES = (
    ApiRoute(
        "GET",
        DEVICES,
        Permission.DEVICES_READ,
        "the devices in the token's scope, filtered by node, site, kind, presence, fault, label,"
        " text and lifecycle, with presence, availability and health",
        answer=schemas.DevicePage,
        query=request_schemas.DeviceListParameters,
    ),
    ApiRoute(
        "GET",
        DEVICE,
        Permission.DEVICES_READ,
        "one device: its placement, inventory (agent, peripherals), last health and most"
        " recent records",
        answer=schemas.DeviceDetail,
        query=request_schemas.DeviceParameters,
    ),
    *devices_changes.ROUTES,
)


def handlers(
    fleet: FleetState, clock: Callable[[], datetime], site_changed: SiteChanged
) -> dict[str, Handler]:
    """The handler of each path of ``ROUTES``; ``site_changed`` re-reads a site into ``fleet``."""
    return {
        DEVICES: partial(list_devices, fleet, clock),
        DEVICE: partial(show_device, fleet, clock),
        **devices_changes.handlers(fleet, clock, site_changed),
    }


def invalid(exc: QueryError) -> ApiError:
    return invalid_parameter(exc.message, parameter=exc.parameter)


async def list_devices(
    fleet: FleetState, clock: Callable[[], datetime], request: web.Request
) -> web.Response:
    """?node=&site=&kind=&presence=&fault=&label=k=v&q=&lifecycle=&limit=&cursor= .

    The response carries ``next_cursor`` (None on the last page), opaque, valid for the same
    filters only.
    """
    try:
        query = parse_query(request.query.items())
        found = await device_queries.candidates(query.filters, request[PRINCIPAL].scope_path)
    except QueryError as exc:
        raise invalid(exc) from None
    now = clock()
    keep = None
    if (wanted := query.filters.presence) is not None:

        def keep(device_id: str) -> bool:
            return matches_presence(fleet, live_state(fleet, device_id, None), wanted, now)

    rows, more = await device_queries.page(found, query.after, query.limit, keep)
    placed = await device_queries.placements(rows)
    items = [device_view(fleet, row, placed.get(row["device_id"]), now) for row in rows]
    next_cursor = encode_cursor(items[-1]["device_id"], query.filters) if more else None
    return web.json_response({"items": items, "next_cursor": next_cursor})


async def show_device(
    fleet: FleetState, clock: Callable[[], datetime], request: web.Request
) -> web.Response:
    """One device, with ``?records=N`` (0 to 100, default 20) of its most recent records."""
    unknown = sorted(set(request.query) - {"records"})
    if unknown:
        msg = f"{unknown[0]} is not a parameter of this route; it takes records"
        raise invalid_parameter(msg, parameter=unknown[0], **unknown_names(unknown, ["records"]))
    records = request.query.get("records", str(DEFAULT_RECORDS))
    if not records.isascii() or not records.isdigit() or int(records) > MAX_RECORDS:
        msg = f"records must be a whole number from 0 to {MAX_RECORDS}, not {records!r}"
        raise invalid_parameter(msg, parameter="records")
    device_id = request.match_info["device_id"]
    located = await device_queries.device_path(device_id)
    placement = located[1] if located else None
    if located is None or not request[PRINCIPAL].sees(placement.site_path if placement else None):
        raise ApiError(404, "not_found", f"no device {device_id!r}")
    found = await device_queries.detail(located[0], placement, int(records))
    return web.json_response(detail_view(fleet, found, clock()))
