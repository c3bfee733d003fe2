"""/readyz on SQLite and PostgreSQL: 503 naming each check that fails, 200 when none does.

Ready takes a database that answers, at the latest migration, and an ingest connected to the
broker. The real server shows what it can reach (a dropped database, a stopped broker); the app
in-process, what the server would never start with (a database it did not migrate) or cannot be
made to do on cue (a busy connection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import test_utils, web
from tortoise.transactions import in_transaction

from control_plane.db import client, connect, database, migrator
from control_plane.fleet import FleetState
from control_plane.http import health
from control_plane.http.app import make_app
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import free_port
from edge.mqtt import BrokerAddress
from tests.support.control_plane import RunningControlPlane, running_control_plane
from tests.support.postgres import PostgresServer

ALL_OK = {"database": "ok", "migrations": "ok", "mqtt": "ok"}
EARLIER = "0004_device_inventory"


async def readyz(url: str) -> tuple[int, dict[str, Any]]:
    """What a probe sees: no token, a fresh connection."""
    async with aiohttp.ClientSession() as probe, probe.get(f"{url}/readyz") as response:
        assert "WWW-Authenticate" not in response.headers
        return response.status, await response.json()


async def not_ready(cp: RunningControlPlane) -> dict[str, Any] | None:
    status, body = await readyz(cp.url)
    return body if status == 503 else None


@contextlib.asynccontextmanager
async def app_on(
    broker: BrokerSettings,
) -> AsyncIterator[test_utils.TestClient[web.Request, web.Application]]:
    """The app in-process on the open database as it is, its ingest connected to ``broker``.

    The broker is the test's own: nothing retained by other tests reaches a database that may
    lack tables.
    """
    fleet = FleetState()
    metrics = ControlPlaneMetrics(fleet)
    ingest = Ingest(fleet, metrics)
    run = asyncio.create_task(ingest.run(BrokerAddress(broker.host, broker.port), "readyz"))
    try:
        async with asyncio.timeout(10):
            while not ingest.connected:  # noqa: ASYNC110 - the ingest offers no event for it
                await asyncio.sleep(0.05)
        async with test_utils.TestClient(
            test_utils.TestServer(make_app(fleet, metrics, ingest))
        ) as app:
            yield app
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run


def postgres_server(postgres: PostgresServer | None) -> PostgresServer:
    if postgres is None:
        pytest.fail("needs PostgreSQL: run ./dev test, which installs and starts it")
    return postgres


async def test_ready_with_the_database_migrated_and_the_ingest_connected(
    broker: BrokerSettings, database_url: str
) -> None:
    async with running_control_plane(broker, database_url) as cp:
        status, body = await readyz(cp.url)

    assert (status, body) == (200, {"status": "ready", "checks": ALL_OK})


async def test_not_ready_while_the_broker_is_down_and_ready_again_once_it_is_back(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = BrokerSettings(workdir=tmp_path / "broker", port=free_port())
    broker = start_broker(settings)
    try:
        async with running_control_plane(settings, sqlite_url) as cp:
            broker.stop()
            down = await cp.wait_for(lambda: not_ready(cp))
            broker = start_broker(settings)

            async def ready() -> bool:
                return (await readyz(cp.url))[0] == 200

            await cp.wait_for(ready, timeout_s=20)
    finally:
        broker.stop()

    assert down == {"status": "not_ready", "checks": {**ALL_OK, "mqtt": "disconnected"}}


def test_not_ready_when_the_database_is_gone(
    own_broker: tuple[BrokerSettings, object], postgres: PostgresServer | None
) -> None:
    server = postgres_server(postgres)
    with server.temporary_database() as url:
        status, body = asyncio.run(readyz_once_dropped(own_broker[0], server, url))

    assert status == 503, body
    assert body["status"] == "not_ready"
    assert body["checks"]["database"].startswith("failed: "), body
    assert body["checks"] == {
        "database": body["checks"]["database"],
        "migrations": health.NOT_CHECKED,
        "mqtt": "ok",
    }
    assert url.rsplit("/", 1)[1] not in str(body), "the database's error is for the log only"


async def readyz_once_dropped(
    broker: BrokerSettings, server: PostgresServer, url: str
) -> tuple[int, dict[str, Any]]:
    """/readyz of a server whose database was dropped under it."""
    async with running_control_plane(broker, url) as cp:
        admin = await asyncpg.connect(server.admin_url, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()
        return await readyz(cp.url)


@pytest.mark.empty_database
async def test_not_ready_while_migrations_are_pending(
    own_broker: tuple[BrokerSettings, object], database_url: str
) -> None:
    async with connect(database_url) as ctx:
        await migrator.upgrade(client(ctx), EARLIER)
        async with app_on(own_broker[0]) as app:
            response = await app.get("/readyz")
            body = await response.json()

    assert response.status == 503, body
    assert body == {
        "status": "not_ready",
        "checks": {
            **ALL_OK,
            "migrations": "8 pending: 0005_staff, 0006_rollups, 0007_provisioning, 0008_content,"
            " 0009_twin, 0010_catalog, 0011_rollouts, 0012_reviews",
        },
    }


async def test_not_ready_when_the_database_does_not_answer_in_time(
    own_broker: tuple[BrokerSettings, object], sqlite_url: str
) -> None:
    """SQLite answers one statement at a time: a transaction held open keeps the probe waiting."""
    async with database(sqlite_url), app_on(own_broker[0]) as app:
        loop = asyncio.get_running_loop()
        async with in_transaction():
            started = loop.time()
            response = await app.get("/readyz")
            waited = loop.time() - started
        body = await response.json()
        after = await app.get("/readyz")

    assert response.status == 503, body
    assert body["checks"] == {
        "database": f"no answer within {health.READY_TIMEOUT_S:g} s",
        "migrations": health.NOT_CHECKED,
        "mqtt": "ok",
    }
    assert health.READY_TIMEOUT_S <= waited < health.READY_TIMEOUT_S + 2
    assert after.status == 200


def test_a_database_ahead_of_this_termfleet_is_not_ready() -> None:
    """A newer replica migrated it: this one's code no longer matches the schema."""
    status = migrator.MigrationStatus(
        known=("0001_initial", "0002_sites"),
        applied=("0001_initial", "0002_sites"),
        unknown=("0003_newer",),
    )

    assert health.migrations_verdict(status) == "ahead of this termfleet: 0003_newer"
