"""Changes to a device over /api/v1/devices/{device_id}/…: labels, move, retire (audited).

Each answers with the device's listing row as it is after the change. A move is put into the
fleet state at once, so presence and ``offline_expected`` follow the new site from the next
request on, without waiting for the server's periodic re-read of placements.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from aiohttp import web

from control_plane import device_admin, device_queries
from control_plane.auth import AuthError, Permission
from control_plane.device_admin import DeviceChangeError
from control_plane.fleet import DeviceState, FleetState
from control_plane.site_cache import SiteChanged

from . import request_schemas, schemas
from .auth import PRINCIPAL, ApiRoute, as_api_error
from .device_views import device_view
from .errors import ApiError, invalid_field, unknown_names

LABELS = "/api/v1/devices/{device_id}/labels"
MOVE = "/api/v1/devices/{device_id}/move"
RETIRE = "/api/v1/devices/{device_id}/retire"
ON_RETIRED: web.AppKey[Callable[[str], None]] = web.AppKey("on_retired")
"""Told each device retired through the API: provisioning revokes its broker login."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Change = Callable[[FleetState, datetime, web.Request], Awaitable[str]]

ROUTES = (
    ApiRoute(
        "PATCH",
        LABELS,
        Permission.DEVICES_WRITE,
        'change a device\'s labels: a JSON merge patch, `{"key": "value"}` sets,'
        ' `{"key": null}` removes',
        answer=schemas.Device,
        body=request_schemas.LabelsPatch,
    ),
    ApiRoute(
        "POST",
        MOVE,
        Permission.DEVICES_WRITE,
        'move a device to a site in scope, and to one of its windows: `{"site": CODE,'
        ' "window": NUMBER}`',
        answer=schemas.Device,
        body=request_schemas.Move,
    ),
    ApiRoute(
        "POST",
        RETIRE,
        Permission.DEVICES_WRITE,
        'retire a device for good (409 if already retired): `{"note": TEXT}` optional',
        answer=schemas.Device,
        body=request_schemas.Retire,
        conflict="the device is retired already",
    ),
)


def handlers(
    fleet: FleetState, clock: Callable[[], datetime], site_changed: SiteChanged
) -> dict[str, Handler]:
    return {
        LABELS: partial(_answer, _labels, fleet, clock),
        MOVE: partial(_answer, partial(_move, site_changed), fleet, clock),
        RETIRE: partial(_answer, _retire, fleet, clock),
    }


async def _answer(
    change: Change, fleet: FleetState, clock: Callable[[], datetime], request: web.Request
) -> web.Response:
    """Run a change, turn its refusals into API errors, answer with the device's row."""
    now = clock()
    try:
        device_id = await change(fleet, now, request)
    except DeviceChangeError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    except AuthError as exc:
        raise as_api_error(exc) from None
    row, placement = await device_queries.listing_row(device_id)
    return web.json_response(device_view(fleet, row, placement, now))


async def _body(request: web.Request, *, required: bool = True) -> Any:  # noqa: ANN401 - JSON
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ApiError(400, "invalid_body", "the request needs a JSON body")
        return {}
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_body", "the body is not UTF-8") from None
    except ValueError as exc:
        raise ApiError(400, "invalid_body", f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "invalid_body", "the body is nested too deep") from None


async def _object(request: web.Request, *, required: bool = True) -> Mapping[str, object]:
    body = await _body(request, required=required)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    return body


async def _labels(_fleet: FleetState, now: datetime, request: web.Request) -> str:
    device_id = request.match_info["device_id"]
    body = await _body(request)
    await device_admin.change_labels(request[PRINCIPAL], device_id, body, now)
    return device_id


async def _move(
    site_changed: SiteChanged, fleet: FleetState, now: datetime, request: web.Request
) -> str:
    device_id = request.match_info["device_id"]
    moved = await device_admin.move(request[PRINCIPAL], device_id, await _object(request), now)
    fleet.place({device_id: moved.site})
    if fleet.site_path(DeviceState(device_id, site=moved.site)) is None:
        # A site made elsewhere (an import, another replica) since the last periodic re-read:
        # read that one, not every site's schedule.
        await site_changed(moved.site)
    return device_id


async def _retire(_fleet: FleetState, now: datetime, request: web.Request) -> str:
    device_id = request.match_info["device_id"]
    body = await _object(request, required=False)
    unknown = sorted(set(body) - {"note"})
    if unknown:
        msg = f"unknown field(s) {', '.join(unknown)}; retiring takes a note"
        raise invalid_field(msg, field=unknown[0], **unknown_names(unknown, ["note"]))
    await device_admin.retire(request[PRINCIPAL], device_id, body.get("note"), now)
    if (retired := request.app.get(ON_RETIRED)) is not None:
        retired(device_id)
    return device_id
