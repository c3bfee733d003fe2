"""aiohttp application: routes and the shared state they read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from control_plane import site_cache, tokens
from control_plane.auth import Permission
from control_plane.fleet import FleetState
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from control_plane.reviews.score_rule import DEFAULT_RULE, ScoreRule

from . import (
    api_tokens,
    audit,
    cases,
    catalogs,
    content,
    dead_letters,
    devices,
    nodes,
    openapi,
    provisioning,
    request_schemas,
    reviews,
    rollout_forward,
    rollouts,
    schemas,
    sites,
    staff,
    stats,
    twin,
    windows,
    workorders,
)
from .auth import OPENAPI_PATH, ApiRoute, Authenticator, auth_middleware
from .errors import error_middleware
from .health import probe_routes

API_ROUTES = (
    *devices.ROUTES,
    *provisioning.ROUTES,
    ApiRoute(
        "GET",
        "/api/v1/audit",
        Permission.AUDIT_READ,
        "the audit log's entries about the token's scope, newest first",
        answer=schemas.AuditPage,
        query=request_schemas.AuditParameters,
    ),
    *nodes.ROUTES,
    *sites.ROUTES,
    *windows.ROUTES,
    *staff.ROUTES,
    *api_tokens.ROUTES,
    *stats.ROUTES,
    *content.ROUTES,
    *twin.ROUTES,
    *catalogs.ROUTES,
    *rollouts.ROUTES,
    *cases.ROUTES,
    *workorders.ROUTES,
    *reviews.ROUTES,
    *dead_letters.ROUTES,
)
"""Every route of the REST API with the permission it needs; docs/api-auth.md lists them."""

METRICS = web.AppKey("metrics", ControlPlaneMetrics)


async def metrics_handler(request: web.Request) -> web.Response:
    body = await request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(  # noqa: PLR0913 - the parts it serves, then keyword-only test seams
    fleet: FleetState,
    metrics: ControlPlaneMetrics,
    ingest: Ingest,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    authenticate: Authenticator = tokens.authenticate,
    sites_cache: site_cache.SiteCache | None = None,
    score_rule: ScoreRule = DEFAULT_RULE,
) -> web.Application:
    """The API, /metrics, /healthz and /readyz; ``sites_cache`` is the server's, for its refresh."""
    app = web.Application(
        middlewares=[
            error_middleware,
            auth_middleware(API_ROUTES, authenticate, clock),
            rollout_forward.forward_rollouts,
        ]
    )
    # One cache for the API and the server's periodic refresh: they re-read sites in turn.
    sites_cache = sites_cache or site_cache.SiteCache(fleet)
    app[METRICS] = metrics
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_routes(probe_routes(ingest))
    handlers: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
        **devices.handlers(fleet, clock, sites_cache.site_changed),
        **provisioning.handlers(clock),
        "/api/v1/audit": audit.list_handler,
        **nodes.handlers(),
        **sites.handlers(sites_cache.site_changed),
        **windows.handlers(),
        **staff.handlers(),
        **api_tokens.handlers(),
        **stats.handlers(clock),
        **content.handlers(clock),
        **twin.handlers(clock),
        **catalogs.handlers(),
        **rollouts.handlers(clock),
        **cases.handlers(clock),
        **workorders.handlers(clock),
        **reviews.handlers(clock, score_rule),
        **dead_letters.handlers(ingest.calendar),
    }
    rollouts.install(app, fleet, metrics.registry)
    for route in API_ROUTES:
        app.router.add_route(route.method, route.path, handlers[route.path])
    app.router.add_get(OPENAPI_PATH, openapi.handler(API_ROUTES))
    return app
