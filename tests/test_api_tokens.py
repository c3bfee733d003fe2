"""/api/v1/tokens on SQLite and PostgreSQL: tokens made by tokens, never beyond their scope."""

from __future__ import annotations

import pytest

from control_plane import tokens
from control_plane.auth import Role
from control_plane.db.models import ApiToken, AuditEntry
from control_plane.http.admin import encode_cursor
from tests.support.admin_api import admin_api, audit_count
from tests.support.scoped_fleet import DISTRICT, TOWN_A, TOWN_B, TOWN_X, VILLAGE_A1, within
from tests.support.tokens import TEST_ACTOR


async def test_an_issued_token_is_shown_once_and_works(database_url: str) -> None:
    async with admin_api(database_url) as api:
        admin = await api.token()
        status, issued = await api.call(
            "POST", "/api/v1/tokens", admin, {"name": "ops-b", "role": "operator", "scope": TOWN_B}
        )
        listed = await api.listing("/api/v1/tokens", admin)
        sites = await api.listing("/api/v1/sites", issued["token"])
        entry = await AuditEntry.get(action="token.create", target_id=str(issued["id"]))
        stored = await ApiToken.get(id=issued["id"])

    assert status == 201
    assert issued["token"].startswith(issued["prefix"])
    assert (issued["role"], issued["scope"], issued["state"]) == ("operator", TOWN_B, "active")
    assert all("token" not in item and "secret_hash" not in item for item in listed)
    assert [site["code"] for site in sites] == [f"s{TOWN_B}"]
    assert entry.actor_token_id is not None
    assert entry.actor_name.startswith("admin-all")
    assert issued["token"] not in str(entry.after)
    assert stored.secret_hash != issued["token"]


async def test_the_secret_is_marked_not_to_be_cached(sqlite_url: str) -> None:
    async with admin_api(sqlite_url) as api:
        response = await api.client.post(
            "/api/v1/tokens",
            json={"name": "n", "role": "auditor"},
            headers={"Authorization": f"Bearer {await api.token()}"},
        )
        assert response.status == 201
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("body", "scope"),
    [
        ({}, TOWN_A),  # no scope given: the issuer's own
        ({"scope": VILLAGE_A1}, VILLAGE_A1),
        ({"scope": TOWN_A}, TOWN_A),
    ],
)
async def test_a_scoped_token_issues_within_its_subtree(
    database_url: str, body: dict[str, object], scope: str
) -> None:
    async with admin_api(database_url) as api:
        issued = await api.ok(
            "POST",
            "/api/v1/tokens",
            await api.token(Role.ADMIN, TOWN_A),
            {"name": "n", "role": "technician", **body},
        )

    assert issued["scope"] == scope


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"scope": TOWN_B}, 403, "out_of_scope"),
        ({"scope": TOWN_X}, 403, "out_of_scope"),  # its code starts with town A's
        ({"scope": DISTRICT}, 403, "out_of_scope"),
        ({"scope": None}, 403, "out_of_scope"),  # the whole tree
        ({"scope": "440117099"}, 403, "out_of_scope"),  # unknown: told apart from nothing
        ({"role": "root"}, 400, "invalid_field"),
        ({"name": ""}, 400, "invalid_field"),
        ({"name": "x" * 65}, 400, "invalid_field"),
        ({"expires_in_days": -1}, 400, "invalid_field"),
    ],
)
async def test_a_scoped_token_cannot_reach_beyond_its_subtree(
    database_url: str, body: dict[str, object], status: int, code: str
) -> None:
    async with admin_api(database_url) as api:
        secret = await api.token(Role.ADMIN, TOWN_A)
        before = await ApiToken.all().count(), await audit_count()
        got, answer = await api.call(
            "POST", "/api/v1/tokens", secret, {"name": "n", "role": "operator", **body}
        )

        assert (got, answer["error"]["code"]) == (status, code), answer
        assert (await ApiToken.all().count(), await audit_count()) == before


async def test_an_unknown_scope_is_a_400_for_the_whole_tree(sqlite_url: str) -> None:
    async with admin_api(sqlite_url) as api:
        body = {"name": "n", "role": "operator", "scope": "440117099"}
        status, answer = await api.call("POST", "/api/v1/tokens", await api.token(), body)

    assert status == 400
    assert answer["error"]["message"] == "scope: no node has the code '440117099'"


@pytest.mark.parametrize("role", [Role.OPERATOR, Role.TECHNICIAN, Role.AUDITOR])
async def test_only_a_role_with_tokens_write_issues_or_revokes(sqlite_url: str, role: Role) -> None:
    async with admin_api(sqlite_url) as api:
        secret = await api.token(role)
        issue = await api.call("POST", "/api/v1/tokens", secret, {"name": "n", "role": "auditor"})
        revoke = await api.call("POST", "/api/v1/tokens/1/revoke", secret)

    assert [issue[1]["error"]["code"], revoke[1]["error"]["code"]] == ["forbidden"] * 2


@pytest.mark.parametrize("scope", [None, DISTRICT, TOWN_A, TOWN_B, VILLAGE_A1])
async def test_each_scope_lists_the_tokens_of_its_subtree(
    database_url: str, scope: str | None
) -> None:
    async with admin_api(database_url) as api:
        for where in (None, DISTRICT, TOWN_A, TOWN_X, TOWN_B, VILLAGE_A1):
            await tokens.issue(f"t-{where}", Role.OPERATOR, actor=TEST_ACTOR, scope_code=where)
        auditor = await api.token(Role.AUDITOR, scope)
        listed = await api.listing("/api/v1/tokens", auditor)

    names = {item["name"] for item in listed if item["name"].startswith("t-")}
    expected = {
        f"t-{w}" for w in (DISTRICT, TOWN_A, TOWN_X, TOWN_B, VILLAGE_A1) if within(w, scope)
    }
    assert names == expected | ({"t-None"} if scope is None else set())


async def test_revoking_within_the_scope(database_url: str) -> None:
    async with admin_api(database_url) as api:
        town_admin = await api.token(Role.ADMIN, TOWN_A)
        village = await api.ok(
            "POST",
            "/api/v1/tokens",
            town_admin,
            {"name": "v", "role": "auditor", "scope": VILLAGE_A1},
        )
        other = await tokens.issue("b", Role.OPERATOR, actor=TEST_ACTOR, scope_code=TOWN_B)
        revoked = await api.ok("POST", f"/api/v1/tokens/{village['id']}/revoke", town_admin)
        refused = await api.call("GET", "/api/v1/sites", village["token"])
        twice = await api.call("POST", f"/api/v1/tokens/{village['id']}/revoke", town_admin)
        outside = await api.call("POST", f"/api/v1/tokens/{other.info.id}/revoke", town_admin)
        unknown = await api.call("POST", "/api/v1/tokens/99999/revoke", town_admin)
        bad = [
            await api.call("POST", f"/api/v1/tokens/{raw}/revoke", town_admin)
            for raw in ("x", "0", "-1", "2147483648", "9" * 5000)
        ]
        entry = await AuditEntry.get(action="token.revoke")

    assert revoked["state"] == "revoked"
    assert (refused[0], refused[1]["error"]["code"]) == (401, "revoked_token")
    assert (twice[0], twice[1]["error"]["code"]) == (409, "already_revoked")
    # A token beyond the scope and one never issued are refused alike.
    assert (outside[0], unknown[0]) == (404, 404)
    assert outside[1]["error"]["message"] == f"no token has the id {other.info.id}"
    assert unknown[1]["error"]["message"] == "no token has the id 99999"
    assert [status for status, _ in bad] == [400] * 5
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["revoked_at"], entry.after["revoked_at"]) == (None, revoked["revoked_at"])


async def test_names_stay_unique_without_telling_other_scopes_tokens(database_url: str) -> None:
    async with admin_api(database_url) as api:
        await tokens.issue("kiosk-bot", Role.OPERATOR, actor=TEST_ACTOR, scope_code=TOWN_B)
        town_admin = await api.token(Role.ADMIN, TOWN_A)
        body = {"name": "kiosk-bot", "role": "operator"}
        taken = await api.call("POST", "/api/v1/tokens", town_admin, body)
        replaced = await api.call("POST", "/api/v1/tokens", town_admin, {**body, "replace": True})
        mine = await api.ok("POST", "/api/v1/tokens", town_admin, {**body, "name": "a-bot"})
        rotated = await api.ok(
            "POST", "/api/v1/tokens", town_admin, {**body, "name": "a-bot", "replace": True}
        )
        old = await ApiToken.get(id=mine["id"])

    for status, answer in (taken, replaced):
        assert (status, answer["error"]["code"]) == (409, "already_exists")
        assert answer["error"]["message"] == "the name 'kiosk-bot' is taken: choose another one"
    assert rotated["id"] != mine["id"]
    assert old.revoked_at is not None


@pytest.mark.parametrize(
    "cursor", [encode_cursor("1"), encode_cursor(2**31), encode_cursor(-1), "x"]
)
async def test_a_token_listing_takes_only_its_own_cursors(sqlite_url: str, cursor: str) -> None:
    async with admin_api(sqlite_url) as api:
        status, body = await api.call("GET", f"/api/v1/tokens?cursor={cursor}", await api.token())

    assert (status, body["error"]["code"]) == (400, "invalid_parameter")
    assert body["error"]["details"] == {"parameter": "cursor"}
