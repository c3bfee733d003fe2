"""aiohttp application: routes and the shared state they read."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from control_plane.fleet import FleetState
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics

from . import devices
from .errors import error_middleware

METRICS = web.AppKey("metrics", ControlPlaneMetrics)
INGEST = web.AppKey("ingest", Ingest)


async def metrics_handler(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def health_handler(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "mqtt_connected": request.app[INGEST].connected})


def make_app(
    fleet: FleetState,
    metrics: ControlPlaneMetrics,
    ingest: Ingest,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[METRICS] = metrics
    app[INGEST] = ingest
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", health_handler)
    app.router.add_get("/api/v1/devices", devices.list_handler(fleet, clock))
    return app
