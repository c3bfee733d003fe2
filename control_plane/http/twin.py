"""/api/v1/config/layers and /api/v1/devices/{id}/config: the device twin (docs/config.md).

A layer is written whole with ``PUT`` (created or replaced): its values are checked against the
typed config keys, and a refused value is a 400 naming the key (``details.field`` is
``values.<key>``, the message lists every refused key). Each change is audited; the devices it
reaches get their new desired config before the answer, published on their downlink when the
server is connected to the broker.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from control_plane import twin_devices, twin_store
from control_plane.auth import Permission
from control_plane.twin_publish import TwinSync

from .admin import Handler, by_method, json_object, no_content, only_parameters, refusals
from .auth import PRINCIPAL, ApiRoute
from .errors import invalid_field, invalid_parameter, unknown_names
from .schemas import Schema

LAYERS = "/api/v1/config/layers"
LAYER = "/api/v1/config/layers/{layer_id}"
DEVICE_CONFIG = "/api/v1/devices/{device_id}/config"
SYNC = web.AppKey("twin_sync", TwinSync)
"""The server's sync, which also publishes; without it (tests of the API alone) changes are
issued in the database only."""
BODY_FIELDS = frozenset({"scope", "values", "priority", "description"})


# --- shapes, for the OpenAPI document -----------------------------------------------------------


class LayerCountsView(Schema):
    targeted: int
    applied: int
    failed: int
    pending: int


class LayerView(Schema):
    """A config layer with the devices it reaches now, by state."""

    id: str
    scope: Annotated[
        dict[str, Any],
        msgspec.Meta(description="`kind` (global, node, labels, device) and its node, labels"),
    ]
    node_path: Annotated[str | None, msgspec.Meta(description="a node scope's path; else null")]
    priority: int
    values: dict[str, Any]
    description: str
    revision: int
    created_at: datetime
    updated_at: datetime
    updated_by: str
    devices: LayerCountsView


class LayerList(Schema):
    items: list[LayerView]
    next_cursor: str | None
    """Always null: every layer comes in one page (admins make tens, not thousands)."""


class LayerBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    scope: Annotated[
        dict[str, Any],
        msgspec.Meta(
            description='`{"kind": "global"}`, `{"kind": "node", "node": CODE}`, `{"kind":'
            ' "labels", "labels": {K: V}}` or `{"kind": "device", "device": ID}`'
        ),
    ]
    values: Annotated[dict[str, Any], msgspec.Meta(description="config keys (docs/config-keys.md)")]
    priority: int = 0
    description: str = ""


class DesiredView(Schema):
    version: int
    values: dict[str, Any]
    sources: Annotated[dict[str, str], msgspec.Meta(description="each key's layer")]
    issued_at: datetime | None
    published: bool


class ReportedView(Schema):
    version: int
    status: Annotated[str, msgspec.Meta(description="applied, failed, pending, unknown or none")]
    error: str
    values: dict[str, Any]
    at: datetime | None
    received_at: datetime | None


class DeviceConfigView(Schema):
    device_id: str
    kind: str
    state: Literal["none", "pending", "applied", "failed"]
    desired: DesiredView
    reported: ReportedView
    effective: Annotated[
        dict[str, Any], msgspec.Meta(description="the desired values over the keys' defaults")
    ]


ROUTES = (
    ApiRoute(
        "GET",
        LAYERS,
        Permission.CONFIG_READ,
        "every config layer, by id, with the devices it reaches: targeted, applied, failed",
        answer=LayerList,
    ),
    ApiRoute(
        "GET",
        LAYER,
        Permission.CONFIG_READ,
        "one config layer with its device counts",
        answer=LayerView,
    ),
    ApiRoute(
        "PUT",
        LAYER,
        Permission.CONFIG_WRITE,
        "create or replace a config layer; a refused value is a 400 naming the key; global and"
        " label layers need a token for the whole tree",
        answer=LayerView,
        body=LayerBody,
    ),
    ApiRoute(
        "DELETE",
        LAYER,
        Permission.CONFIG_WRITE,
        "delete a config layer: its devices fall back to the layers below, or the defaults",
        status=204,
    ),
    ApiRoute(
        "GET",
        DEVICE_CONFIG,
        Permission.CONFIG_READ,
        "a device's desired config with each key's layer, what it reported, and what it runs with",
        answer=DeviceConfigView,
    ),
)


def handlers(clock: Callable[[], datetime]) -> dict[str, Handler]:
    async def put(request: web.Request) -> web.Response:
        return await put_layer(clock, request)

    async def delete(request: web.Request) -> web.Response:
        return await delete_layer(clock, request)

    return {
        LAYERS: refusals(list_layers),
        LAYER: refusals(by_method({"GET": show_layer, "PUT": put, "DELETE": delete})),
        DEVICE_CONFIG: refusals(device_config),
    }


def _sync(request: web.Request) -> TwinSync:
    return request.app.get(SYNC) or TwinSync(None)


async def list_layers(request: web.Request) -> web.Response:
    only_parameters(request, set())
    counts = await twin_devices.layer_counts()
    items = [_view(stored, counts) for stored in await twin_store.load_layers()]
    return web.json_response({"items": items, "next_cursor": None})


async def show_layer(request: web.Request) -> web.Response:
    _no_parameters(request)
    stored = await twin_store.get_layer(request.match_info["layer_id"])
    return web.json_response(_view(stored, await twin_devices.layer_counts()))


async def put_layer(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    _no_parameters(request)
    body = await json_object(request)
    if unknown := set(body) - BODY_FIELDS:
        msg = f"unknown field(s) {', '.join(sorted(unknown))}"
        raise invalid_field(msg, field=min(unknown), **unknown_names(unknown, BODY_FIELDS))
    if missing := sorted({"scope", "values"} - set(body)):
        msg = f"{', '.join(missing)}: required"
        raise invalid_field(msg, field=missing[0])
    spec = twin_store.LayerInput(
        id=request.match_info["layer_id"],
        scope=body["scope"],
        values=body["values"],
        priority=body.get("priority", 0),
        description=body.get("description", ""),
    )
    change = await twin_store.put_layer(request[PRINCIPAL], spec, clock())
    await _issue(request, change)
    assert change.stored is not None  # noqa: S101 - a put always stores
    view = _view(change.stored, await twin_devices.layer_counts())
    return web.json_response(view, status=201 if change.created else 200)


async def delete_layer(clock: Callable[[], datetime], request: web.Request) -> web.Response:
    _no_parameters(request)
    change = await twin_store.delete_layer(
        request[PRINCIPAL], request.match_info["layer_id"], clock()
    )
    await _issue(request, change)
    return no_content()


async def _issue(request: web.Request, change: twin_store.LayerChange) -> None:
    """Give the devices the change reaches their new desired config, before answering."""
    devices = await twin_devices.device_contexts()
    reached = twin_devices.affected(change.before, change.after, devices)
    if reached:
        await _sync(request).apply(reached)


async def device_config(request: web.Request) -> web.Response:
    _no_parameters(request)
    view = await twin_devices.device_config(request[PRINCIPAL], request.match_info["device_id"])
    return web.json_response(view)


def _view(stored: twin_store.StoredLayer, counts: Any) -> dict[str, Any]:  # noqa: ANN401
    return {
        **twin_store.layer_view(stored),
        "devices": twin_devices.counts_view(counts, stored.row.id),
    }


def _no_parameters(request: web.Request) -> None:
    if request.query:
        name = min(request.query)
        msg = f"{name} is not a parameter of this route; it takes none"
        raise invalid_parameter(msg, parameter=name)
