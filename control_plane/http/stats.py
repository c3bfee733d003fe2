"""/api/v1/stats/cases and /api/v1/stats/reviews: figures from the roll-ups, within the scope.

A token's figures cover its scope's subtree: without ``node``, all of it; with ``node``, that
node's subtree, which must lie in the scope (403 ``out_of_scope`` otherwise, and for a node
that does not exist, to a scoped token). Figures of
devices placed at no site count only for whole-tree tokens, as those devices are listed only
for them. Both routes take the same parameters (``control_plane.stats_query``); docs/statistics.md
describes them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web

from control_plane import stats
from control_plane.auth import (
    AuthError,
    Permission,
    PermissionDeniedError,
    Principal,
    Refusal,
)
from control_plane.rollup_settings import RollupSettings
from control_plane.stats_groups import CASES, REVIEWS, Figures
from control_plane.stats_query import StatsParameterError, parse_query

from . import request_schemas, schemas
from .auth import PRINCIPAL, ApiRoute, as_api_error
from .errors import invalid_parameter

Handler = Callable[[web.Request], Awaitable[web.Response]]


def figures_handler(
    kind: Figures, clock: Callable[[], datetime], settings: RollupSettings | None = None
) -> Handler:
    """A handler answering with the figures of ``kind``; days are in ``settings``' zone."""
    zone = (settings or RollupSettings.from_env()).zone

    async def handler(request: web.Request) -> web.Response:
        principal = request[PRINCIPAL]
        try:
            query = parse_query(request.query.items(), today=clock().astimezone(zone).date())
            if query.node is None:
                root_path, root_code = principal.scope_path, principal.scope_code
            else:
                root_path, root_code = await _root(principal, query.node), query.node
            body = await stats.figures(query, kind, root_path=root_path, root_code=root_code)
        except StatsParameterError as exc:
            raise invalid_parameter(exc.message, parameter=exc.parameter) from None
        except AuthError as exc:
            raise as_api_error(exc) from None
        return web.json_response(body)

    return handler


async def _root(principal: Principal, code: str) -> str:
    """The path of the query's node, which must lie in the token's scope.

    To a scoped token an unknown node is one outside its scope: a 403 either way, so that it
    cannot tell which codes exist beyond its subtree.
    """
    try:
        path = await stats.node_path(code)
    except StatsParameterError:
        if principal.scope_path is None:
            raise
        msg = f"outside this token's scope ({principal.scope_code})"
        raise PermissionDeniedError(Refusal.OUT_OF_SCOPE, msg) from None
    principal.require_within(path)
    return path


ROUTES = (
    ApiRoute(
        "GET",
        "/api/v1/stats/cases",
        Permission.STATS_READ,
        "handled cases (办件量) and usage in the token's scope, grouped by level, site, node,"
        " department, item, day or month",
        answer=schemas.CaseStats,
        query=request_schemas.StatsParameters,
    ),
    ApiRoute(
        "GET",
        "/api/v1/stats/reviews",
        Permission.STATS_READ,
        "好差评 ratings by level and the satisfaction rate in the token's scope, grouped as the"
        " cases",
        answer=schemas.ReviewStats,
        query=request_schemas.StatsParameters,
    ),
)


def handlers(clock: Callable[[], datetime]) -> dict[str, Handler]:
    """The handlers of ``ROUTES``, by path: the cases and the reviews."""
    settings = RollupSettings.from_env()
    return {
        "/api/v1/stats/cases": figures_handler(CASES, clock, settings),
        "/api/v1/stats/reviews": figures_handler(REVIEWS, clock, settings),
    }
