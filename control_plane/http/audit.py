"""/api/v1/audit: the audit log, newest first, as far as the token's scope reaches."""

from __future__ import annotations

from aiohttp import web

from control_plane import audit

from .admin import MAX_INT_KEY, only_parameters
from .auth import PRINCIPAL
from .errors import invalid_parameter
from .params import integer, limit_param


async def list_handler(request: web.Request) -> web.Response:
    """List entries: ?limit=&cursor= ; the response carries next_cursor (an entry id).

    A scoped token reads the entries about its subtree; only a token for the whole tree reads
    the global ones.
    """
    only_parameters(request, set())
    limit = limit_param(request)
    cursor = integer(request, "cursor")
    # Entry ids are INTEGER columns: a larger number would reach the database as an error.
    if cursor is not None and not 1 <= cursor <= MAX_INT_KEY:
        msg = "cursor must be a positive entry id (the next_cursor of the previous page)"
        raise invalid_parameter(msg, parameter="cursor")
    within = request[PRINCIPAL].scope_path
    found = await audit.entries(limit=limit + 1, before_id=cursor, within=within)
    page = [audit.entry_view(entry) for entry in found[:limit]]
    next_cursor = str(page[-1]["id"]) if len(found) > limit else None
    return web.json_response({"items": page, "next_cursor": next_cursor})
