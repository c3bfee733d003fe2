"""The REST API in-process over a test's database, for the statistics tests."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import test_utils

from control_plane import registry, rollups, tokens
from control_plane.auth import Role
from control_plane.db import database
from control_plane.fleet import FleetState
from control_plane.http.app import make_app
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from control_plane.rollup_settings import RollupSettings
from tests.support.scoped_fleet import ApiClient
from tests.support.tokens import TEST_ACTOR


@dataclass(frozen=True)
class StatsApi:
    client: ApiClient

    async def token(self, role: Role = Role.ADMIN, scope: str | None = None) -> str:
        name = f"{role}-{scope or 'all'}-{uuid.uuid4().hex[:8]}"
        return (await tokens.issue(name, role, actor=TEST_ACTOR, scope_code=scope)).secret

    async def get(self, path: str, secret: str) -> tuple[int, Any]:
        response = await self.client.get(path, headers={"Authorization": f"Bearer {secret}"})
        return response.status, await response.json()

    async def ok(self, path: str, secret: str) -> Any:  # noqa: ANN401 - JSON
        status, body = await self.get(path, secret)
        assert status == 200, (path, status, body)
        return body


@contextlib.asynccontextmanager
async def stats_api(
    database_url: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> AsyncIterator[tuple[StatsApi, Callable[[], Any]]]:
    """The API with the database open; the second value rolls up what is stored so far."""
    async with database(database_url):
        fleet = FleetState(await registry.load_states())
        metrics = ControlPlaneMetrics(fleet)
        app = make_app(fleet, metrics, Ingest(fleet, metrics), clock=clock)

        async def roll_up() -> rollups.RollupReport:
            return await rollups.roll_up(RollupSettings())

        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            yield StatsApi(client), roll_up
