"""The audit log on SQLite and PostgreSQL: written with its change, read newest first, by scope."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from tortoise.transactions import in_transaction

from control_plane import audit, tokens
from control_plane.auth import Actor, Role
from control_plane.cli import cli
from control_plane.db import database
from control_plane.db.models import AuditEntry
from tests.support.tokens import TEST_ACTOR

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
OPS = Actor(7, "ops-conghua")


async def test_an_entry_holds_who_what_when_and_the_target_before_and_after(
    database_url: str,
) -> None:
    async with database(database_url):
        written = await audit.record(
            "device.label",
            OPS,
            "device",
            "kiosk-440117000-01",
            before={"labels": {}},
            after={"labels": {"floor": "1"}},
            note="moved to the lobby",
            scope_path="/44/4401/440117/",
            at=NOW,
        )
        (read,) = await audit.entries()

    assert read.id == written.id
    assert audit.entry_view(read) == {
        "id": written.id,
        "at": NOW.isoformat(),
        "actor": "ops-conghua",
        "actor_token_id": 7,
        "action": "device.label",
        "target_type": "device",
        "target_id": "kiosk-440117000-01",
        "scope_path": "/44/4401/440117/",
        "before": {"labels": {}},
        "after": {"labels": {"floor": "1"}},
        "note": "moved to the lobby",
    }


async def test_an_entry_goes_with_its_change_when_that_is_rolled_back(database_url: str) -> None:
    class UndoneError(Exception):
        pass

    async def change_that_fails() -> None:
        async with in_transaction() as connection:
            await audit.record("device.retire", OPS, "device", "x", using_db=connection)
            raise UndoneError

    async with database(database_url):
        with pytest.raises(UndoneError):
            await change_that_fails()
        assert await AuditEntry.all().count() == 0


async def test_entries_come_newest_first_a_page_at_a_time(database_url: str) -> None:
    async with database(database_url):
        for n in range(5):
            await audit.record("token.create", OPS, "token", n, at=NOW + timedelta(seconds=n))
        first = await audit.entries(limit=2)
        second = await audit.entries(limit=2, before_id=first[-1].id)
        last = await audit.entries(limit=2, before_id=second[-1].id)

    assert [e.target_id for e in [*first, *second, *last]] == ["4", "3", "2", "1", "0"]


# Paths whose codes are text prefixes of each other: a range compared other than byte by byte
# (a linguistic collation on PostgreSQL) would mix them up.
PATHS = {
    "town": "/44/4401/440117/440117001/",
    "village": "/44/4401/440117/440117001/440117001001/",
    "lookalike": "/44/4401/440117/4401170010/",
    "sibling": "/44/4401/440117/440117002/",
    "other city": "/44/44010/",
    "district": "/44/4401/440117/",
}


@pytest.mark.parametrize(
    ("within", "expected"),
    [
        (None, {*PATHS, "global"}),
        (PATHS["district"], {"town", "village", "lookalike", "sibling", "district"}),
        (PATHS["town"], {"town", "village"}),
        (PATHS["village"], {"village"}),
        ("/44/4401/", {"town", "village", "lookalike", "sibling", "district"}),
    ],
)
async def test_a_scoped_reader_reads_its_subtree_and_never_the_global_entries(
    database_url: str, within: str | None, expected: set[str]
) -> None:
    async with database(database_url):
        for name, path in PATHS.items():
            await audit.record("x.change", OPS, "x", name, scope_path=path)
        await audit.record("x.change", OPS, "x", "global")
        found = await audit.entries(within=within, limit=100)

    assert {e.target_id for e in found} == expected


async def test_creating_and_revoking_a_token_are_audited_without_its_secret(
    database_url: str,
) -> None:
    async with database(database_url):
        issued = await tokens.issue("ops", Role.OPERATOR, actor=TEST_ACTOR, now=NOW)
        await tokens.revoke("ops", actor=OPS, now=NOW + timedelta(hours=1))
        revoked, created = await audit.entries()

    assert (created.action, created.actor_name, created.actor_token_id) == (
        "token.create",
        "local:test",
        None,
    )
    assert (created.target_type, created.target_id) == ("token", str(issued.info.id))
    assert created.before is None
    assert created.after is not None
    assert created.after["name"] == "ops"
    assert created.after["role"] == "operator"
    assert (revoked.action, revoked.actor_name, revoked.actor_token_id) == (
        "token.revoke",
        "ops-conghua",
        7,
    )
    assert revoked.before is not None
    assert revoked.after is not None
    assert revoked.before["revoked_at"] is None
    assert revoked.after["revoked_at"] == (NOW + timedelta(hours=1)).isoformat()
    for entry in (created, revoked):
        assert issued.secret not in json.dumps(audit.entry_view(entry))


def test_a_command_on_the_database_acts_as_the_os_user() -> None:
    assert audit.local_actor() == Actor(None, f"local:{getpass.getuser()}")


def test_audit_ls_lists_the_newest_entries(database_url: str) -> None:
    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(
            cli, [*args, "--database-url", database_url], prog_name="termfleet"
        )
        return result.exit_code, result.stdout, result.stderr

    for name in ("a", "b", "c"):
        assert run("tokens", "create", "--name", name, "--role", "auditor")[0] == 0
    assert run("tokens", "revoke", "b")[0] == 0

    code, table, err = run("audit", "ls", "--limit", "3")
    assert code == 0, err
    header, *rows = table.splitlines()
    assert header.split() == ["ID", "AT", "ACTOR", "ACTION", "TARGET", "NOTE"]
    assert [row.split()[3] for row in rows] == ["token.revoke", "token.create", "token.create"]
    assert all(row.split()[2] == f"local:{getpass.getuser()}" for row in rows)

    code, out, err = run("audit", "ls", "--json")
    assert code == 0, err
    entries = json.loads(out)
    assert [e["action"] for e in entries] == ["token.revoke", *["token.create"] * 3]
    assert entries[0]["before"]["name"] == "b"
    assert entries[0]["after"]["revoked_at"] is not None
