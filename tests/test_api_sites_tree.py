"""/api/v1/nodes on SQLite and PostgreSQL: the tree as each scope sees it, and its changes.

The tree is ``tests/support/scoped_fleet.py``'s: 44 → 4401 → 440117 → towns A (with village A1),
B and X (whose code starts with A's).
"""

from __future__ import annotations

from typing import Any

import pytest

from control_plane import tokens
from control_plane.auth import Role
from control_plane.db.models import AuditEntry, JurisdictionNode
from tests.support.admin_api import Api, admin_api, audit_count
from tests.support.scoped_fleet import (
    DISTRICT,
    NODES,
    TOWN_A,
    TOWN_B,
    TOWN_X,
    VILLAGE_A1,
    within,
)
from tests.support.tokens import TEST_ACTOR

SCOPES: list[str | None] = [None, *(code for code, _, _ in NODES)]
TOWN_C = {"code": "440117003", "name": "温泉镇", "level": "town", "parent": DISTRICT}


async def walk(api: Api, secret: str) -> list[str]:
    """Every node reachable from the top of the token's tree, by listing children."""
    found: list[str] = []
    pending: list[dict[str, Any]] = await api.listing("/api/v1/nodes", secret)
    while pending:
        node = pending.pop()
        found.append(node["code"])
        if node["children"]:
            pending += await api.listing(f"/api/v1/nodes?parent={node['code']}", secret)
    return found


@pytest.mark.parametrize("scope", SCOPES)
async def test_each_scope_walks_its_subtree_and_nothing_else(
    database_url: str, scope: str | None
) -> None:
    async with admin_api(database_url) as api:
        secret = await api.token(Role.AUDITOR, scope)
        found = await walk(api, secret)

    assert sorted(found) == sorted(code for code, _, _ in NODES if within(code, scope))


async def test_the_top_is_the_roots_or_the_scope_with_their_counts(database_url: str) -> None:
    async with admin_api(database_url) as api:
        everything = await api.ok("GET", "/api/v1/nodes", await api.token())
        town = await api.ok("GET", "/api/v1/nodes", await api.token(Role.OPERATOR, TOWN_A))
        towns = await api.listing(f"/api/v1/nodes?parent={DISTRICT}", await api.token())

    assert [n["code"] for n in everything["items"]] == ["44"]
    assert everything["items"][0] == {
        "code": "44", "name": "n44", "level": "province", "parent": None, "path": ["44"],
        "children": 1, "sites": 0,
    }  # fmt: skip
    assert [(n["code"], n["children"], n["sites"]) for n in town["items"]] == [(TOWN_A, 1, 1)]
    # By code, as text: 440117001 < 4401170010 < 440117002.
    assert [n["code"] for n in towns] == [TOWN_A, TOWN_X, TOWN_B]


async def test_a_node_shows_its_ancestors_and_what_its_subtree_holds(database_url: str) -> None:
    async with admin_api(database_url) as api:
        town = await api.ok("GET", f"/api/v1/nodes/{TOWN_A}", await api.token(Role.AUDITOR))
        district = await api.ok("GET", f"/api/v1/nodes/{DISTRICT}", await api.token())

    assert [a["code"] for a in town["ancestors"]] == ["44", "4401", DISTRICT]
    assert town["path"] == ["44", "4401", DISTRICT, TOWN_A]
    assert (town["parent"], town["children"], town["sites"]) == (DISTRICT, 1, 1)
    assert town["subtree"] == {"sites": 2, "devices": 2}
    assert (district["children"], district["sites"]) == (3, 1)
    assert district["subtree"] == {"sites": 5, "devices": 5}


async def test_creating_a_node_audits_it_and_a_town_may_grow_villages(database_url: str) -> None:
    async with admin_api(database_url) as api:
        created = await api.ok("POST", "/api/v1/nodes", await api.token(), TOWN_C)
        village = {"code": "440117001002", "name": "A2", "level": "village", "parent": TOWN_A}
        secret_a = await api.token(Role.ADMIN, TOWN_A)
        await api.ok("POST", "/api/v1/nodes", secret_a, village)
        shown = await api.ok("GET", "/api/v1/nodes/440117001002", secret_a)
        entries = await AuditEntry.filter(action="node.create").order_by("id")

    assert created == {**TOWN_C, "path": ["44", "4401", DISTRICT, "440117003"]}
    assert shown["ancestors"][-1]["code"] == TOWN_A
    assert [(e.target_id, e.scope_path, e.before) for e in entries] == [
        ("440117003", "/44/4401/440117/440117003/", None),
        ("440117001002", "/44/4401/440117/440117001/440117001002/", None),
    ]
    assert entries[1].after is not None
    assert entries[1].after["name"] == "A2"
    assert entries[1].actor_name.startswith("admin-440117001")


@pytest.mark.parametrize(
    ("change", "status", "code", "message", "details"),
    [
        ({"code": "440118003"}, 400, "invalid_field", "does not extend its parent's code", "code"),
        (
            {"code": DISTRICT + "3"},
            409,
            "already_exists",
            "a node with the code 4401173 exists",
            None,
        ),
        ({"code": TOWN_B}, 409, "already_exists", f"a node with the code {TOWN_B} exists", None),
        (
            {"level": "city"},
            400,
            "invalid_field",
            "level: a city cannot be below a district",
            "level",
        ),
        (
            {"level": "district"},
            400,
            "invalid_field",
            "a district cannot be below a district",
            "level",
        ),
        (
            {"parent": "440199"},
            400,
            "invalid_field",
            "parent: no node has the code '440199'",
            "parent",
        ),
        ({"code": "44011x"}, 400, "invalid_field", "is not a 行政区划 code", "code"),
        ({"name": None}, 400, "invalid_field", "name: missing", "name"),
        ({"name": ["x"]}, 400, "invalid_field", "name: must be text", "name"),
        ({"path": "/x/"}, 400, "invalid_field", "unknown field(s) path", None),
    ],
)
async def test_a_node_that_does_not_fit_the_tree_is_refused(
    database_url: str,
    change: dict[str, object],
    status: int,
    code: str,
    message: str,
    details: str | None,
) -> None:
    """``details`` names the field at fault; a conflict, or an unknown field, names none."""
    async with admin_api(database_url) as api:
        secret = await api.token()
        if code == "already_exists" and change["code"] != TOWN_B:
            await api.ok("POST", "/api/v1/nodes", secret, {**TOWN_C, **change})
        before = await audit_count()
        got, body = await api.call("POST", "/api/v1/nodes", secret, {**TOWN_C, **change})

        assert (got, body["error"]["code"]) == (status, code), body
        assert message in body["error"]["message"]
        assert body["error"]["details"] == ({"field": details} if details else {})
        assert await audit_count() == before


async def test_a_node_can_be_renamed_and_nothing_else(database_url: str) -> None:
    async with admin_api(database_url) as api:
        secret = await api.token(Role.ADMIN, TOWN_A)
        renamed = await api.ok("PATCH", f"/api/v1/nodes/{TOWN_A}", secret, {"name": "街口街"})
        refusals = [
            await api.call("PATCH", f"/api/v1/nodes/{TOWN_A}", secret, body)
            for body in ({"parent": TOWN_B}, {"code": "440117009"}, {})
        ]
        entry = await AuditEntry.get(action="node.update")

    assert renamed["name"] == "街口街"
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["name"], entry.after["name"]) == (f"n{TOWN_A}", "街口街")
    assert [status for status, _ in refusals] == [400, 400, 400]
    assert "parent: cannot be changed" in refusals[0][1]["error"]["message"]


async def test_only_an_empty_node_can_be_deleted(database_url: str) -> None:
    async with admin_api(database_url) as api:
        secret = await api.token()
        await tokens.issue("town-b-ops", Role.OPERATOR, actor=TEST_ACTOR, scope_code=TOWN_B)
        await tokens.revoke("town-b-ops", actor=TEST_ACTOR)
        refusals = {
            code: await api.call("DELETE", f"/api/v1/nodes/{code}", secret)
            for code in (DISTRICT, VILLAGE_A1, TOWN_B)
        }
        await api.ok("POST", "/api/v1/nodes", secret, TOWN_C)
        deleted = await api.call("DELETE", "/api/v1/nodes/440117003", secret)
        gone = await api.call("GET", "/api/v1/nodes/440117003", secret)
        entry = await AuditEntry.get(action="node.delete")
        left = await JurisdictionNode.filter(code__in=[DISTRICT, VILLAGE_A1, TOWN_B]).count()

    for status, body in refusals.values():
        assert (status, body["error"]["code"]) == (409, "in_use")
    messages = {code: body["error"]["message"] for code, (_, body) in refusals.items()}
    assert "it has 3 child nodes, 1 site;" in messages[DISTRICT]
    assert "it has 1 site;" in messages[VILLAGE_A1]
    assert "1 site, 1 API token (revoked tokens count too" in messages[TOWN_B]
    assert deleted == (204, None)
    assert gone[0] == 404
    assert (entry.target_id, entry.after, entry.before is not None) == ("440117003", None, True)
    assert left == 3
