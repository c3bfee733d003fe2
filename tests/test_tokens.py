"""API tokens in the database, on SQLite and PostgreSQL: issued, listed, revoked, authenticated.

The secret is shown once and stored nowhere: not in any table, not in the audit log.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.exceptions import IntegrityError, OperationalError

from control_plane import tokens
from control_plane.auth import (
    AuthenticationError,
    PermissionDeniedError,
    Principal,
    Refusal,
    Role,
)
from control_plane.db import client, database
from control_plane.db.migrator import table_names
from control_plane.db.models import ApiToken, AuditEntry, JurisdictionNode
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.tokens import TokenError
from tests.support.scoped_fleet import TOWN_A, document
from tests.support.tokens import TEST_ACTOR

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


async def issue(
    name: str,
    role: Role = Role.OPERATOR,
    *,
    scope_code: str | None = None,
    expires_in: timedelta | None = None,
    replace: bool = False,
) -> tokens.IssuedToken:
    return await tokens.issue(
        name,
        role,
        actor=TEST_ACTOR,
        scope_code=scope_code,
        expires_in=expires_in,
        replace=replace,
        now=NOW,
    )


async def every_stored_text(database_url: str) -> str:
    """Every row of every table, as text: where a leaked secret would show."""
    async with database(database_url) as ctx:
        connection = client(ctx)
        dump = []
        for table in sorted(await table_names(connection)):
            _, rows = await connection.execute_query(f'SELECT * FROM "{table}"')  # noqa: S608 - names from the catalogue
            dump += [repr(dict(row)) for row in rows]
    return "\n".join(dump)


async def test_the_secret_is_shown_once_and_stored_nowhere(database_url: str) -> None:
    async with database(database_url):
        issued = await issue("ops")
        await tokens.revoke("ops", actor=TEST_ACTOR, now=NOW)
        row = await ApiToken.get(id=issued.info.id)

    assert row.secret_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
    assert row.prefix == issued.secret[:11] == issued.info.prefix
    stored = await every_stored_text(database_url)
    assert issued.secret not in stored
    assert issued.secret[11:20] not in stored, "no part of the secret beyond the prefix either"
    assert issued.info.prefix in stored


async def test_listing_shows_what_identifies_a_token_never_its_secret(database_url: str) -> None:
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        first = await issue("ops-a", scope_code=TOWN_A, expires_in=timedelta(days=30))
        second = await issue("audit", Role.AUDITOR)
        listed = await tokens.list_tokens()

    views = [info.to_dict(NOW) for info in listed]
    assert [v["name"] for v in views] == ["ops-a", "audit"]
    assert views[0] == {
        "id": first.info.id,
        "name": "ops-a",
        "prefix": first.info.prefix,
        "role": "operator",
        "scope": TOWN_A,
        "created_at": NOW.isoformat(),
        "expires_at": (NOW + timedelta(days=30)).isoformat(),
        "last_used_at": None,
        "revoked_at": None,
        "state": "active",
    }
    assert views[1]["scope"] is None
    for secret in (first.secret, second.secret):
        assert secret not in repr(views)
        assert secret not in repr(listed)


async def test_a_name_is_taken_until_its_token_is_revoked(database_url: str) -> None:
    async with database(database_url):
        first = await issue("ci")
        with pytest.raises(TokenError, match="a token named 'ci' exists"):
            await issue("ci")
        await tokens.revoke("ci", actor=TEST_ACTOR, now=NOW)
        second = await issue("ci")

    assert second.info.id != first.info.id


async def test_replace_rotates_a_token_in_one_step(database_url: str) -> None:
    async with database(database_url):
        old = await issue("demo-admin", Role.ADMIN)
        new = await issue("demo-admin", Role.ADMIN, replace=True)
        with pytest.raises(AuthenticationError) as refused:
            await tokens.authenticate(old.secret, NOW)
        principal = await tokens.authenticate(new.secret, NOW)
        actions = [e.action for e in await AuditEntry.all().order_by("id")]

    assert refused.value.code == Refusal.REVOKED_TOKEN
    assert principal.name == "demo-admin"
    assert actions == ["token.create", "token.revoke", "token.create"]


async def test_a_token_is_revoked_by_name_prefix_or_itself(database_url: str) -> None:
    async with database(database_url):
        by_name, by_prefix, by_secret = [await issue(n) for n in ("a", "b", "c")]
        await tokens.revoke("a", actor=TEST_ACTOR, now=NOW)
        await tokens.revoke(by_prefix.info.prefix, actor=TEST_ACTOR, now=NOW)
        await tokens.revoke(by_secret.secret, actor=TEST_ACTOR, now=NOW)
        states = {info.name: info.state(NOW) for info in await tokens.list_tokens()}

    assert states == {"a": "revoked", "b": "revoked", "c": "revoked"}
    assert by_name.info.name == "a"


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("nobody", "no token is named 'nobody' or starts with it"),
        ("gone", "token 'gone' is already revoked"),
        ("tf_", "2 tokens match 'tf_'"),
    ],
)
async def test_revoking_what_is_not_one_unrevoked_token_says_why(
    database_url: str, which: str, message: str
) -> None:
    async with database(database_url):
        await issue("gone")
        await tokens.revoke("gone", actor=TEST_ACTOR, now=NOW)
        await issue("x")
        await issue("y")
        await ApiToken.all().update(prefix="tf_")  # two tokens listed alike
        with pytest.raises(TokenError, match=message):
            await tokens.revoke(which, actor=TEST_ACTOR, now=NOW)


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "tab\tin"])
async def test_a_name_must_be_short_and_printable(sqlite_url: str, name: str) -> None:
    async with database(sqlite_url):
        with pytest.raises(TokenError, match="1 to 64 printable characters"):
            await issue(name)


async def test_a_scope_must_be_a_node_of_the_tree(database_url: str) -> None:
    async with database(database_url):
        with pytest.raises(TokenError, match="no jurisdiction node has the code '999'"):
            await issue("lost", scope_code="999")
        assert await ApiToken.all().count() == 0
        assert await AuditEntry.all().count() == 0


async def test_a_scoped_node_cannot_be_deleted_under_its_tokens(database_url: str) -> None:
    """Deleting it must not widen the token to the whole tree."""
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        await issue("village", scope_code="440117001001")
        village = await JurisdictionNode.get(code="440117001001")
        with pytest.raises((IntegrityError, OperationalError)):
            await village.delete()
        assert (await tokens.list_tokens())[0].scope_code == "440117001001"


async def test_authentication_gives_the_tokens_role_and_scope(database_url: str) -> None:
    async with database(database_url):
        await import_inventory(read_json(document(), "scoped.json"))
        issued = await issue("tech", Role.TECHNICIAN, scope_code=TOWN_A)
        principal = await tokens.authenticate(issued.secret, NOW)

    assert principal == Principal(
        issued.info.id, "tech", Role.TECHNICIAN, "/44/4401/440117/440117001/", TOWN_A
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"revoked_at": NOW}, Refusal.REVOKED_TOKEN),
        ({"expires_at": NOW}, Refusal.EXPIRED_TOKEN),
        ({"secret_hash": "0" * 64}, Refusal.UNKNOWN_TOKEN),
    ],
)
async def test_authentication_refuses_unusable_tokens(
    database_url: str, change: dict[str, object], code: Refusal
) -> None:
    async with database(database_url):
        issued = await issue("t")
        await ApiToken.filter(id=issued.info.id).update(**change)
        with pytest.raises(AuthenticationError) as refused:
            await tokens.authenticate(issued.secret, NOW)
        last_used = (await ApiToken.get(id=issued.info.id)).last_used_at

    assert refused.value.code == code
    assert issued.secret not in refused.value.message
    assert last_used is None, "a refused token is not used"


async def test_a_role_this_termfleet_does_not_know_is_refused(sqlite_url: str) -> None:
    async with database(sqlite_url):
        issued = await issue("future")
        await ApiToken.filter(id=issued.info.id).update(role="superuser")
        with pytest.raises(PermissionDeniedError, match="a role this termfleet does not know"):
            await tokens.authenticate(issued.secret, NOW)
