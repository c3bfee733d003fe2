"""Bearer tokens on the REST API, on SQLite and PostgreSQL: 401s, 403s and scopes on every route.

The API runs in-process on the tree of ``tests/support/scoped_fleet.py`` (two towns, a village,
a town whose code starts like another's, a district hall and a device placed nowhere).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientResponse, test_utils, web

from control_plane import tokens
from control_plane.auth import ROLE_PERMISSIONS, Principal, Role, new_secret
from control_plane.db import database
from control_plane.db.models import ApiToken
from control_plane.fleet import FleetState
from control_plane.http.app import API_ROUTES, make_app
from control_plane.http.auth import ApiRoute
from control_plane.http.errors import INTERNAL_ERROR_MESSAGE
from control_plane.ingest import Ingest
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.metrics import ControlPlaneMetrics
from control_plane.services.broker import BrokerSettings
from tests.support.admin_api import sites_within, top_of_tree
from tests.support.control_plane import running_control_plane
from tests.support.scoped_fleet import (
    DISTRICT,
    NODES,
    TOWN_A,
    TOWN_B,
    UNPLACED,
    ApiClient,
    document,
    scoped_api,
    visible,
    within,
)
from tests.support.tokens import TEST_ACTOR

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
FIGURES = (
    "/api/v1/stats/cases",
    "/api/v1/stats/reviews",
    "/api/v1/scores",
    "/api/v1/workorders/summary",
)
WHOLE_TREE = ("/api/v1/dead-letters",)
ROUTES = [
    route.path
    for route in API_ROUTES
    if route.method == "GET"
    and "{" not in route.path
    and route.path not in FIGURES
    and route.path not in WHOLE_TREE
]
"""The listings, which each scope must see its subtree through. Routes that name one object,
and changes, are scope-tested with their objects (tests/test_api_*.py); their roles below.
Figures are not a paged listing: tests/test_api_stats.py checks each scope's statistics,
tests/test_api_reviews.py its scores and tests/test_api_workorders.py its work-order summary.
Listings of what belongs to no subtree refuse scoped tokens: tests/test_api_dead_letters.py."""
SCOPES: list[str | None] = [None, *(code for code, _, _ in NODES)]


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


async def issue(
    role: Role = Role.ADMIN,
    scope: str | None = None,
    name: str | None = None,
    expires_in: timedelta | None = None,
) -> str:
    """A token's secret, in the database the API is open on."""
    name = name or f"{role}-{scope or 'all'}"
    issued = await tokens.issue(
        name, role, actor=TEST_ACTOR, scope_code=scope, expires_in=expires_in, now=NOW
    )
    return issued.secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def listing(client: ApiClient, path: str, secret: str) -> list[dict[str, Any]]:
    """Every item of a listing, two per page, so that paging is checked against scopes too."""
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        response = await client.get(path + query, headers=bearer(secret))
        assert response.status == 200, await response.text()
        body = await response.json()
        items += body["items"]
        if not body["next_cursor"]:
            return items
        cursor = body["next_cursor"]


# --- scopes, via every route -----------------------------------------------------------------


def expected_token_entries(scope: str | None) -> set[str]:
    """The audit entries (token.create, by token name) a token for ``scope`` reads."""
    names = {f"admin-{s}" for s in SCOPES if s is not None and within(s, scope)}
    return names | ({"admin-all"} if scope is None else set())


# What a token for a scope must get from each route (by id), and how an item is identified.
EXPECTED: dict[str, tuple[Callable[[str | None], set[str]], Callable[[dict[str, Any]], str]]] = {
    "/api/v1/devices": (visible, lambda item: str(item["device_id"])),
    "/api/v1/audit": (expected_token_entries, lambda item: str(item["after"]["name"])),
    "/api/v1/nodes": (top_of_tree, lambda item: str(item["code"])),
    "/api/v1/sites": (sites_within, lambda item: str(item["code"])),
    "/api/v1/departments": (lambda _scope: set(), lambda item: str(item["code"])),  # none there
    "/api/v1/staff": (lambda _scope: set(), lambda item: str(item["number"])),  # none there
    "/api/v1/tokens": (expected_token_entries, lambda item: str(item["name"])),
    # None there; each scope's claims: tests/test_api_provisioning.py.
    "/api/v1/claims": (lambda _scope: set(), lambda item: str(item["id"])),
    # None there; packages belong to the whole fleet, not a subtree: tests/test_api_content.py.
    "/api/v1/packages": (lambda _scope: set(), lambda item: str(item["sha256"])),
    # None there; rollouts are fleet-wide, every scope reads them: tests/test_api_rollouts.py.
    "/api/v1/rollouts": (lambda _scope: set(), lambda item: str(item["id"])),
    # None there; each scope's layers: tests/test_api_twin.py.
    "/api/v1/config/layers": (lambda _scope: set(), lambda item: str(item["id"])),
    # None there; catalogs belong to the whole fleet, like packages: tests/test_api_catalogs.py.
    "/api/v1/catalogs": (lambda _scope: set(), lambda item: str(item["name"])),
    # None there; each scope's reviews, refusals, chain problems and policies:
    # tests/test_api_reviews.py, and its work orders: tests/test_api_workorders.py.
    "/api/v1/reviews": (lambda _scope: set(), lambda item: str(item["case_number"])),
    "/api/v1/reviews/refusals": (lambda _scope: set(), lambda item: str(item["id"])),
    "/api/v1/reviews/chain-problems": (lambda _scope: set(), lambda item: str(item["id"])),
    "/api/v1/review-policies": (lambda _scope: set(), lambda item: str(item["node"])),
    "/api/v1/workorders": (lambda _scope: set(), lambda item: str(item["id"])),
}


def test_every_route_has_a_scope_expectation() -> None:
    assert set(EXPECTED) == set(ROUTES), "a new route needs its line in EXPECTED"


@pytest.mark.parametrize("path", ROUTES)
async def test_each_scope_sees_its_subtree_and_nothing_else(database_url: str, path: str) -> None:
    expect, identify = EXPECTED[path]
    async with scoped_api(database_url) as client:
        secrets = {scope: await issue(Role.ADMIN, scope) for scope in SCOPES}

        for scope, secret in secrets.items():
            items = await listing(client, path, secret)
            ids = [identify(item) for item in items]
            assert sorted(ids) == sorted(expect(scope)), f"scope {scope}"


async def test_a_town_operator_sees_its_towns_devices_only(database_url: str) -> None:
    async with scoped_api(database_url) as client:
        town_a = await listing(client, "/api/v1/devices", await issue(Role.OPERATOR, TOWN_A))
        town_b = await listing(client, "/api/v1/devices", await issue(Role.OPERATOR, TOWN_B))

    assert {d["device_id"] for d in town_a} == {"kiosk-a", "pad-a1"}
    assert {d["device_id"] for d in town_b} == {"kiosk-b"}
    assert {d["site"] for d in town_a} == {f"s{TOWN_A}", "s440117001001"}


async def test_the_server_loads_where_sites_lie_at_start(
    broker: BrokerSettings, database_url: str
) -> None:
    """The real server: sites' paths come with its placement refresh, not from a test's fleet."""
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
    async with running_control_plane(
        broker, database_url, role=Role.TECHNICIAN, scope=DISTRICT
    ) as cp:
        body = await cp.get_json("/api/v1/devices")

    assert {d["device_id"] for d in body["items"]} == visible(DISTRICT)
    assert UNPLACED not in visible(DISTRICT)


# --- 401 ----------------------------------------------------------------------------------


ANONYMOUS = 'Bearer realm="termfleet"'
INVALID = 'Bearer realm="termfleet", error="invalid_token"'


async def assert_refused(
    response: ClientResponse, status: int, code: str, challenge: str
) -> dict[str, Any]:
    body = await response.json()
    assert response.status == status, body
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert response.headers["WWW-Authenticate"] == challenge
    return body  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", [*ROUTES, "/api/v1/no-such-route"])
@pytest.mark.parametrize(
    ("headers", "code", "challenge"),
    [
        ({}, "missing_token", ANONYMOUS),
        ({"Authorization": ""}, "missing_token", ANONYMOUS),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "malformed_token", INVALID),
        ({"Authorization": "Bearer"}, "malformed_token", INVALID),
        ({"Authorization": "Bearer tf_not-a-token"}, "malformed_token", INVALID),
    ],
)
async def test_no_usable_header_is_a_401(
    sqlite_url: str, path: str, headers: dict[str, str], code: str, challenge: str
) -> None:
    async with scoped_api(sqlite_url) as client:
        response = await client.get(path, headers=headers)
        body = await assert_refused(response, 401, code, challenge)

    assert body["error"]["details"] == {}


@pytest.mark.parametrize("path", ROUTES)
async def test_unknown_expired_and_revoked_tokens_are_401s(database_url: str, path: str) -> None:
    clock = Clock()
    async with scoped_api(database_url, clock) as client:
        expiring = await issue(name="expiring", expires_in=timedelta(days=1))
        revoked = await issue(name="revoked")
        await tokens.revoke("revoked", actor=TEST_ACTOR, now=NOW)
        never_issued = await issue(name="dropped")  # well-formed, then gone from the database
        await ApiToken.filter(name="dropped").delete()
        clock.now = NOW + timedelta(days=1)

        for secret, code in [
            (never_issued, "unknown_token"),
            (expiring, "expired_token"),
            (revoked, "revoked_token"),
        ]:
            response = await client.get(path, headers=bearer(secret))
            body = await assert_refused(response, 401, code, INVALID)
            assert secret not in body["error"]["message"]


# --- 403 ----------------------------------------------------------------------------------


def concrete(path: str) -> str:
    """The path with each ``{parameter}`` filled in: the permission is checked before lookups."""
    return re.sub(r"\{[^}]+\}", "x", path)


@pytest.mark.parametrize("route", API_ROUTES, ids=lambda r: f"{r.method} {r.path}")
@pytest.mark.parametrize("role", list(Role))
async def test_a_role_reaches_the_routes_of_its_permissions_only(
    sqlite_url: str, route: ApiRoute, role: Role
) -> None:
    async with scoped_api(sqlite_url) as client:
        headers = bearer(await issue(role))
        response = await client.request(route.method, concrete(route.path), headers=headers)
        listing = route.method == "GET" and route.path in ROUTES
        if route.permission in ROLE_PERMISSIONS[role] and listing:
            assert response.status == 200, await response.text()
        elif route.permission in ROLE_PERMISSIONS[role]:
            # Let through: refused, if at all, for the object or the body (404, 400), not the role.
            assert response.status not in {401, 403}, await response.text()
        else:
            challenge = 'Bearer realm="termfleet", error="insufficient_scope"'
            body = await assert_refused(response, 403, "forbidden", challenge)
            assert str(route.permission) in body["error"]["message"]
            assert body["error"]["details"] == {"permission": route.permission, "role": role}


@pytest.mark.parametrize(
    "path", ["/api/v1//devices", "/api/v1/devices/", "/api/v1/%64evices", "/api/v1/DEVICES"]
)
async def test_no_spelling_of_a_path_reaches_the_api_without_a_token(
    sqlite_url: str, path: str
) -> None:
    async with scoped_api(sqlite_url) as client:
        response = await client.get(path)
        body = await response.text()

    assert response.status in {401, 404}, body
    assert "kiosk" not in body


async def test_with_a_token_an_unknown_route_is_a_404(sqlite_url: str) -> None:
    async with scoped_api(sqlite_url) as client:
        response = await client.get("/api/v1/no-such-route", headers=bearer(await issue()))
        assert response.status == 404
        body = await response.json()

    assert (body["error"]["code"], body["error"]["details"]) == ("not_found", {})


async def test_a_route_declared_without_a_permission_is_refused_to_everyone() -> None:
    async def admin(_secret: str, _now: datetime) -> Principal:
        return Principal(1, "root", Role.ADMIN)

    async def undeclared(_request: web.Request) -> web.Response:
        return web.json_response({"leaked": True})

    fleet = FleetState()
    metrics = ControlPlaneMetrics(fleet)
    app = make_app(fleet, metrics, Ingest(fleet, metrics), authenticate=admin)
    app.router.add_get("/api/v1/undeclared", undeclared)
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        response = await client.get("/api/v1/undeclared", headers=bearer(new_secret()))
        body = await response.json()

    assert response.status == 403
    assert body["error"]["code"] == "forbidden"


# --- the one error format, for aiohttp's refusals and for bugs --------------------------------


async def test_a_method_the_path_lacks_is_a_405_naming_the_allowed_ones(sqlite_url: str) -> None:
    async with scoped_api(sqlite_url) as client:
        response = await client.put("/api/v1/nodes", headers=bearer(await issue()))
        body = await response.json()

    assert response.status == 405, body
    assert body["error"]["code"] == "method_not_allowed"
    assert body["error"]["details"] == {"allowed": ["GET", "POST"]}
    assert response.headers["Allow"] == "GET,POST"


async def test_a_body_over_the_size_limit_is_a_413_in_the_same_format(sqlite_url: str) -> None:
    async with scoped_api(sqlite_url) as client:
        too_large = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        response = await client.post("/api/v1/nodes", headers=bearer(await issue()), data=too_large)
        body = await response.json()

    assert response.status == 413, body
    assert body["error"]["code"] == "request_entity_too_large"
    assert body["error"]["details"] == {}


async def test_a_failing_handler_is_a_500_that_keeps_its_traceback_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("the internals of the failure")

    fleet = FleetState()
    metrics = ControlPlaneMetrics(fleet)
    app = make_app(fleet, metrics, Ingest(fleet, metrics))
    app.router.add_get("/broken", broken)
    async with test_utils.TestClient(test_utils.TestServer(app)) as client:
        response = await client.get("/broken")
        text = await response.text()

    assert response.status == 500
    assert json.loads(text) == {
        "error": {"code": "internal_error", "message": INTERNAL_ERROR_MESSAGE, "details": {}}
    }
    assert "internals" not in text
    assert "Traceback" in caplog.text
    assert "RuntimeError: the internals of the failure" in caplog.text


# --- what stays open, and what is recorded ---------------------------------------------------


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
async def test_metrics_and_health_need_no_token(sqlite_url: str, path: str) -> None:
    async with scoped_api(sqlite_url) as client:
        response = await client.get(path)
        assert response.status == 200
        assert "WWW-Authenticate" not in response.headers


async def test_last_use_is_written_at_most_once_a_minute(database_url: str) -> None:
    clock = Clock()
    async with scoped_api(database_url, clock) as client:
        secret = await issue(name="busy")

        async def last_used_after_a_request_at(moment: datetime) -> datetime | None:
            clock.now = moment
            response = await client.get("/api/v1/devices", headers=bearer(secret))
            assert response.status == 200
            return (await ApiToken.get(name="busy")).last_used_at

        assert await last_used_after_a_request_at(NOW) == NOW
        assert await last_used_after_a_request_at(NOW + timedelta(seconds=59)) == NOW
        later = NOW + timedelta(seconds=61)
        assert await last_used_after_a_request_at(later) == later
