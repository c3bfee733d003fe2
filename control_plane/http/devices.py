"""/api/v1/devices: the device registry as seen by operators and scripts."""

from __future__ import annotations

from aiohttp import web

from control_plane import registry
from edge.protocol import DeviceKind, PresenceState

from .errors import ApiError

DEFAULT_LIMIT = 100


def _choice(request: web.Request, name: str, allowed: set[str]) -> str | None:
    value = request.query.get(name)
    if value is not None and value not in allowed:
        raise ApiError(
            400, "invalid_parameter", f"{name} must be one of {sorted(allowed)}, not {value!r}"
        )
    return value


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"limit must be an integer, not {raw!r}") from None
    if not 1 <= limit <= registry.MAX_PAGE:
        raise ApiError(400, "invalid_parameter", f"limit must be between 1 and {registry.MAX_PAGE}")
    return limit


async def list_handler(request: web.Request) -> web.Response:
    """List devices: ?kind=&presence=&limit=&cursor= ; the response carries next_cursor."""
    flt = registry.DeviceFilter(
        kind=_choice(request, "kind", {k.value for k in DeviceKind}),
        presence=_choice(request, "presence", {p.value for p in PresenceState}),
    )
    items, next_cursor = await registry.list_devices(
        flt, request.query.get("cursor"), _limit(request)
    )
    return web.json_response({"items": items, "next_cursor": next_cursor})
