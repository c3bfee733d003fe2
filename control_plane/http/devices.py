"""/api/v1/devices: the fleet as operators and scripts see it, live from the fleet state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from control_plane.fleet import PRESENCE_FILTERS, DeviceState, FleetState
from edge.protocol import DeviceKind

from .errors import ApiError

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


def _choice(request: web.Request, name: str, allowed: AbstractSet[str]) -> str | None:
    value = request.query.get(name)
    if value is not None and value not in allowed:
        msg = f"{name} must be one of {sorted(allowed)}, not {value!r}"
        raise ApiError(400, "invalid_parameter", msg)
    return value


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_LIMIT))
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"limit must be an integer, not {raw!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ApiError(400, "invalid_parameter", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def device_view(fleet: FleetState, state: DeviceState, now: datetime) -> dict[str, Any]:
    presence = fleet.effective(state, now)
    health = state.health
    return {
        "device_id": state.device_id,
        "kind": state.kind.value,
        "presence": presence.state.value,
        "presence_reason": presence.reason,
        "availability": presence.availability.value,
        "site": state.site or None,
        "session": state.session,
        "agent_version": state.agent_version,
        "last_seen": _iso(state.last_seen),
        "health": msgspec.to_builtins(health) if health else None,
    }


def list_handler(
    fleet: FleetState, clock: Callable[[], datetime]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        """List devices: ?kind=&presence=&limit=&cursor= ; the response carries next_cursor.

        ``presence`` is online, offline or unknown, or an availability: offline_expected
        (its site is closed) or offline_unexpected.
        """
        kind = _choice(request, "kind", {k.value for k in DeviceKind})
        presence = _choice(request, "presence", PRESENCE_FILTERS)
        limit = _limit(request)
        after = request.query.get("cursor", "")
        now = clock()
        page: list[dict[str, Any]] = []
        for state in sorted(fleet, key=lambda s: s.device_id):
            if state.device_id <= after or (kind and state.kind.value != kind):
                continue
            view = device_view(fleet, state, now)
            if presence and presence not in (view["presence"], view["availability"]):
                continue
            if len(page) == limit:
                return web.json_response({"items": page, "next_cursor": page[-1]["device_id"]})
            page.append(view)
        return web.json_response({"items": page, "next_cursor": None})

    return handler
