"""/api/v1/devices: the fleet as operators and scripts see it, live from the fleet state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from control_plane.fleet import PRESENCE_FILTERS, DeviceState, FleetState
from edge.protocol import DeviceKind

from .auth import PRINCIPAL
from .params import choice, limit_param


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
        """List the devices in the token's scope: ?kind=&presence=&limit=&cursor= .

        The response carries next_cursor. A device lies in a scope when its site's node does;
        one placed nowhere only in the whole tree's.

        ``presence`` is online, offline or unknown, or an availability: offline_expected
        (its site is closed) or offline_unexpected.
        """
        kind = choice(request, "kind", {k.value for k in DeviceKind})
        presence = choice(request, "presence", PRESENCE_FILTERS)
        limit = limit_param(request)
        principal = request[PRINCIPAL]
        after = request.query.get("cursor", "")
        now = clock()
        page: list[dict[str, Any]] = []
        for state in sorted(fleet, key=lambda s: s.device_id):
            if state.device_id <= after or (kind and state.kind.value != kind):
                continue
            if not principal.sees(fleet.site_path(state)):
                continue
            view = device_view(fleet, state, now)
            if presence and presence not in (view["presence"], view["availability"]):
                continue
            if len(page) == limit:
                return web.json_response({"items": page, "next_cursor": page[-1]["device_id"]})
            page.append(view)
        return web.json_response({"items": page, "next_cursor": None})

    return handler
