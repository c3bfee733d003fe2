"""The administration API (tree, sites, windows, staff, tokens) in-process, for its tests.

It runs on the tree of ``scoped_fleet`` (two towns, a village, a town whose code starts like
another's, a district hall), with the fleet state exposed so that a test can check what a change
did to the server's memory. ``Api.call`` sends one request as a token and returns the status
and the decoded body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from aiohttp import test_utils

from control_plane import tokens
from control_plane.auth import Role
from control_plane.db import database
from control_plane.db.models import AuditEntry
from control_plane.fleet import FleetState
from control_plane.http.app import make_app
from control_plane.ingest import Ingest
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.metrics import ControlPlaneMetrics
from tests.support.scoped_fleet import DEVICES_AT, ApiClient, document, load_fleet, within
from tests.support.tokens import TEST_ACTOR

DEPARTMENTS = ("gongan", "minzheng", "shebao")


@dataclass(frozen=True)
class Api:
    client: ApiClient
    fleet: FleetState

    async def token(self, role: Role = Role.ADMIN, scope: str | None = None) -> str:
        """A new token's secret, issued straight into the database as the CLI does."""
        count = len(await tokens.listed())
        name = f"{role}-{scope or 'all'}-{count}"
        return (await tokens.issue(name, role, actor=TEST_ACTOR, scope_code=scope)).secret

    async def call(
        self, method: str, path: str, secret: str, body: object = None, *, raw: bytes | None = None
    ) -> tuple[int, Any]:
        """One request, ``body`` sent as JSON (``raw`` as it is): its status and JSON (or None)."""
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        response = await self.client.request(method, path, headers=headers, data=data)
        text = await response.text()
        return response.status, json.loads(text) if text else None

    async def ok(self, method: str, path: str, secret: str, body: object = None) -> Any:  # noqa: ANN401 - JSON
        """The body of a request that must succeed (2xx)."""
        status, answer = await self.call(method, path, secret, body)
        assert 200 <= status < 300, (method, path, status, answer)
        return answer

    async def listing(self, path: str, secret: str, page_size: int = 2) -> list[dict[str, Any]]:
        """Every item of a listing, ``page_size`` per page, so that paging is exercised too."""
        items: list[dict[str, Any]] = []
        separator = "&" if "?" in path else "?"
        cursor = ""
        while True:
            query = f"{separator}limit={page_size}" + (f"&cursor={cursor}" if cursor else "")
            body = await self.ok("GET", path + query, secret)
            items += body["items"]
            if not body["next_cursor"]:
                return items
            cursor = body["next_cursor"]


def top_of_tree(scope: str | None) -> set[str]:
    """What ``GET /api/v1/nodes`` lists for a scope on the scoped tree: the root, or the scope."""
    return {scope or "44"}


def sites_within(scope: str | None) -> set[str]:
    """The codes of the scoped tree's sites that a token for ``scope`` sees."""
    return {f"s{node}" for node in set(DEVICES_AT.values()) if within(node, scope)}


async def audit_count() -> int:
    return await AuditEntry.all().count()


@contextlib.asynccontextmanager
async def admin_api(database_url: str) -> AsyncIterator[Api]:
    """The REST API on the scoped tree, with some departments, and the database open."""
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        departments = [{"code": code, "name": f"dept {code}"} for code in DEPARTMENTS]
        await import_inventory(read_json(json.dumps({"departments": departments}), "d.json"))
        fleet = await load_fleet()
        metrics = ControlPlaneMetrics(fleet)
        app = make_app(fleet, metrics, Ingest(fleet, metrics))
        async with test_utils.TestClient(test_utils.TestServer(app)) as client:
            yield Api(client, fleet)


Setup = Callable[[Api, Mapping[str, str]], Awaitable[None]]
START_TIMEOUT_S = 60


@contextlib.contextmanager
def admin_api_in_a_thread(
    database_url: str, wanted: Mapping[str, tuple[Role, str | None]], setup: Setup | None = None
) -> Iterator[tuple[str, dict[str, str]]]:
    """``admin_api`` on a loop of its own, for tests that run the CLI (which runs its own loop).

    Yields the API's URL and a secret per name in ``wanted`` (role, scope); ``setup`` runs on
    the API with those secrets before the URL is handed out.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="admin-api", daemon=True)
    thread.start()
    ready: Future[tuple[str, dict[str, str], asyncio.Event]] = Future()

    async def serve() -> None:
        # One task holds the database open; the server's handlers run in its context.
        stop = asyncio.Event()
        async with admin_api(database_url) as api:
            secrets = {name: await api.token(*how) for name, how in wanted.items()}
            if setup is not None:
                await setup(api, secrets)
            ready.set_result((str(api.client.make_url("")).rstrip("/"), secrets, stop))
            await stop.wait()

    served = asyncio.run_coroutine_threadsafe(serve(), loop)
    try:
        pending: list[Future[Any]] = [ready, served]
        wait(pending, timeout=START_TIMEOUT_S, return_when=FIRST_COMPLETED)
        if served.done():
            served.result()  # the error that kept it from starting
        url, secrets, stop = ready.result(timeout=0)
        try:
            yield url, secrets
        finally:
            loop.call_soon_threadsafe(stop.set)
            served.result(timeout=START_TIMEOUT_S)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
