"""Scopes through every route of the tree, sites, windows, departments, staff and tokens.

A town's admin tries each route on the other town's objects: what the URL names is a 404 that
reads like an object that does not exist, a placement in the other town is a 403, and nothing
changes. Also run against town X, whose code starts with town A's. And every route that takes
a body refuses what is not a JSON object with a 400, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from control_plane import tokens
from control_plane.auth import Role
from control_plane.http import api_tokens, nodes, sites, staff, windows
from tests.support.admin_api import Api, admin_api, audit_count
from tests.support.scoped_fleet import TOWN_A, TOWN_B, TOWN_X
from tests.support.tokens import TEST_ACTOR

ROUTES = {
    (route.method, route.path)
    for module in (nodes, sites, windows, staff, api_tokens)
    for route in module.ROUTES
}


@dataclass(frozen=True)
class Attempt:
    method: str
    route: str
    path: str
    body: object
    status: int
    code: str = ""


def attempts(other: str, token_id: int) -> list[Attempt]:
    """What town A's admin tries on the ``other`` town; ``token_id`` is a token scoped there."""
    site = f"s{other}"
    node = "/api/v1/nodes/{code}"
    one_site = "/api/v1/sites/{code}"
    window = "/api/v1/sites/{code}/windows/{number}"
    member = "/api/v1/staff/{number}"
    hall = {"code": "h", "name": "h", "level": "village", "node": other, "hours": "24/7"}
    village = {"code": f"{other}09", "name": "v", "level": "village", "parent": other}
    staff_body = {"number": "X1", "name": "x", "department": "gongan", "site": site}
    return [
        Attempt("GET", "/api/v1/nodes", f"/api/v1/nodes?parent={other}", None, 404, "not_found"),
        Attempt("POST", "/api/v1/nodes", "/api/v1/nodes", village, 403, "out_of_scope"),
        Attempt("GET", node, f"/api/v1/nodes/{other}", None, 404, "not_found"),
        Attempt("PATCH", node, f"/api/v1/nodes/{other}", {"name": "x"}, 404, "not_found"),
        Attempt("DELETE", node, f"/api/v1/nodes/{other}", None, 404, "not_found"),
        Attempt("GET", "/api/v1/sites", f"/api/v1/sites?node={other}", None, 404, "not_found"),
        Attempt("POST", "/api/v1/sites", "/api/v1/sites", hall, 403, "out_of_scope"),
        Attempt("GET", one_site, f"/api/v1/sites/{site}", None, 404, "not_found"),
        Attempt("PATCH", one_site, f"/api/v1/sites/{site}", {"name": "x"}, 404, "not_found"),
        Attempt(  # its own site, moved out of its scope
            "PATCH", one_site, f"/api/v1/sites/s{TOWN_A}", {"node": other}, 403, "out_of_scope"
        ),
        Attempt("DELETE", one_site, f"/api/v1/sites/{site}", None, 404, "not_found"),
        Attempt("POST", window, f"/api/v1/sites/{site}/windows/02", {}, 404, "not_found"),
        Attempt("PATCH", window, f"/api/v1/sites/{site}/windows/01", {"name": "x"}, 404),
        Attempt("DELETE", window, f"/api/v1/sites/{site}/windows/01", None, 404, "not_found"),
        Attempt("GET", "/api/v1/departments", "/api/v1/departments", None, 200),  # shared
        Attempt(
            "POST", "/api/v1/departments", "/api/v1/departments", {"code": "d", "name": "d"}, 403
        ),
        Attempt("GET", "/api/v1/staff", f"/api/v1/staff?site={site}", None, 404, "not_found"),
        Attempt("POST", "/api/v1/staff", "/api/v1/staff", staff_body, 403, "out_of_scope"),
        Attempt("GET", member, "/api/v1/staff/O001", None, 404, "not_found"),
        Attempt("PATCH", member, "/api/v1/staff/O001", {"name": "x"}, 404, "not_found"),
        Attempt("PATCH", member, "/api/v1/staff/A001", {"site": site}, 403, "out_of_scope"),
        Attempt("GET", "/api/v1/tokens", "/api/v1/tokens", None, 200),  # its own only: below
        Attempt(
            "POST",
            "/api/v1/tokens",
            "/api/v1/tokens",
            {"name": "t", "role": "operator", "scope": other},
            403,
            "out_of_scope",
        ),
        Attempt(
            "POST",
            "/api/v1/tokens/{id}/revoke",
            f"/api/v1/tokens/{token_id}/revoke",
            None,
            404,
            "not_found",
        ),
    ]


def test_every_route_is_tried_from_outside() -> None:
    assert {(a.method, a.route) for a in attempts(TOWN_B, 1)} == ROUTES


async def furnish(api: Api, other: str) -> int:
    """A window and staff in town A and in ``other``, and a token scoped there (its id)."""
    secret = await api.token()
    for town, number in ((TOWN_A, "A001"), (other, "O001")):
        await api.ok("POST", f"/api/v1/sites/s{town}/windows/01", secret, {"departments": []})
        body = {"number": number, "name": "n", "department": "gongan", "site": f"s{town}"}
        await api.ok("POST", "/api/v1/staff", secret, {**body, "window": "01"})
    issued = await tokens.issue("other-ops", Role.OPERATOR, actor=TEST_ACTOR, scope_code=other)
    return issued.info.id


@pytest.mark.parametrize("other", [TOWN_B, TOWN_X])
async def test_a_town_cannot_read_or_change_another_through_any_route(
    database_url: str, other: str
) -> None:
    async with admin_api(database_url) as api:
        token_id = await furnish(api, other)
        town_a = await api.token(Role.ADMIN, TOWN_A)
        before = await audit_count()
        for attempt in attempts(other, token_id):
            status, body = await api.call(attempt.method, attempt.path, town_a, attempt.body)
            where = f"{attempt.method} {attempt.path}"
            assert status == attempt.status, (where, body)
            if attempt.code:
                assert body["error"]["code"] == attempt.code, (where, body)
            if status == 404:  # nothing about what lies there (the next test: the wording)
                assert f"n{other}" not in str(body)
        listed = await api.listing("/api/v1/tokens", town_a)
        after = await audit_count()
        shown_b = await api.ok("GET", f"/api/v1/sites/s{other}", await api.token())

    assert after == before
    assert "other-ops" not in {token["name"] for token in listed}
    assert [w["name"] for w in shown_b["windows"]] == [""]  # unchanged
    assert shown_b["name"] == f"site {other}"


async def test_an_object_beyond_the_scope_reads_like_one_that_does_not_exist(
    database_url: str,
) -> None:
    async with admin_api(database_url) as api:
        await furnish(api, TOWN_B)
        town_a = await api.token(Role.ADMIN, TOWN_A)
        pairs = [
            ("/api/v1/nodes/{}", TOWN_B, "440117099"),
            ("/api/v1/sites/{}", f"s{TOWN_B}", "s-none"),
            ("/api/v1/staff/{}", "O001", "O999"),
            ("/api/v1/sites/{}/windows/01", f"s{TOWN_B}", "s-none"),
        ]
        for template, beyond, missing in pairs:
            method = "PATCH" if "windows" in template else "GET"
            body = {"name": "x"} if method == "PATCH" else None
            got = await api.call(method, template.format(beyond), town_a, body)
            absent = await api.call(method, template.format(missing), town_a, body)
            assert (got[0], absent[0]) == (404, 404)
            assert got[1]["error"]["message"] == absent[1]["error"]["message"].replace(
                missing, beyond
            )


BODY_ROUTES = sorted(
    (method, path)
    for method, path in ROUTES
    if method in {"POST", "PATCH"} and not path.endswith("/revoke")
)
RAW_BODIES = {
    "not json": b"{name: x}",
    "empty": b"",
    "an array": b"[1, 2]",
    "a string": b'"x"',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "not utf-8": b'{"name": "\xff"}',
    "nul": b'{"name": "a\\u0000b"}',
    "surrogate": b'{"name": "\\ud800"}',
}


@pytest.mark.parametrize(("method", "route"), BODY_ROUTES)
async def test_every_body_that_is_no_json_object_is_a_400(
    sqlite_url: str, method: str, route: str
) -> None:
    path = route.format(code=f"s{TOWN_A}", number="A001").replace("{number}", "01")
    if route.startswith("/api/v1/nodes/"):
        path = f"/api/v1/nodes/{TOWN_A}"
    async with admin_api(sqlite_url) as api:
        await furnish(api, TOWN_B)
        secret = await api.token()
        before = await audit_count()
        for name, raw in RAW_BODIES.items():
            status, body = await api.call(method, path, secret, raw=raw)
            assert status == 400, (name, body)
            assert body["error"]["code"] in {"invalid_body", "invalid_field"}, (name, body)
        assert await audit_count() == before
