"""Schema migrations on SQLite and PostgreSQL: upgrades keep data, the first is the old schema."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from tortoise.context import TortoiseContext
from tortoise.exceptions import IntegrityError
from tortoise.migrations.autodetector import MigrationAutodetector

from control_plane import tokens
from control_plane.auth import Actor, Role
from control_plane.cli import cli
from control_plane.db import AUTO_MIGRATE_ENV, DatabaseError, client, connect, database, migrator
from control_plane.db.content_models import ContentPackage
from control_plane.db.models import AuditEntry, Device, RejectedMessage, StoredRecord
from control_plane.db.twin_models import DeviceTwin
from control_plane.inventory_files import read
from control_plane.inventory_store import import_inventory

# Each test brings its database to the migration it starts from.
pytestmark = pytest.mark.empty_database

CONGHUA = Path(__file__).parent.parent / "edge" / "simulator" / "data" / "conghua.json"
LATEST = [
    "0001_initial",
    "0002_sites",
    "0003_auth",
    "0004_device_inventory",
    "0005_staff",
    "0006_rollups",
    "0007_provisioning",
    "0008_content",
    "0009_twin",
    "0010_catalog",
    "0011_rollouts",
    "0012_reviews",
]

# The tables as `generate_schemas` created them before migrations existed (whitespace folded):
# 0001_initial must create exactly these, so that old databases and new ones agree.
SCHEMA_BEFORE_MIGRATIONS = {
    "device": 'CREATE TABLE "device" ( "device_id" VARCHAR(64) NOT NULL PRIMARY KEY, "kind"'
    ' VARCHAR(32) NOT NULL, "presence" VARCHAR(16) NOT NULL, "presence_session" BIGINT NOT NULL,'
    ' "agent_version" VARCHAR(64) NOT NULL, "first_seen" TIMESTAMP NOT NULL, "last_seen"'
    ' TIMESTAMP, "last_health" JSON )',
    "record": 'CREATE TABLE "record" ( "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,'
    ' "device_id" VARCHAR(64) NOT NULL, "seq" BIGINT NOT NULL, "channel" VARCHAR(16) NOT NULL,'
    ' "type" VARCHAR(32) NOT NULL, "device_time" TIMESTAMP, "received_at" TIMESTAMP NOT NULL,'
    ' "payload" TEXT NOT NULL, CONSTRAINT "uid_record_device__7f81e8" UNIQUE ("device_id",'
    ' "seq") )',
    "rejected_message": 'CREATE TABLE "rejected_message" ( "id" INTEGER PRIMARY KEY'
    ' AUTOINCREMENT NOT NULL, "topic" VARCHAR(255) NOT NULL, "device_id" VARCHAR(64), "seq"'
    ' BIGINT, "reason" VARCHAR(32) NOT NULL, "detail" TEXT NOT NULL, "payload" TEXT NOT NULL,'
    ' "received_at" TIMESTAMP NOT NULL )',
}

# Rows written the way the walking skeleton's code wrote them, in raw SQL: the models of today
# no longer match a database at 0001_initial.
SEED_AT_INITIAL = """
INSERT INTO "device" ("device_id", "kind", "presence", "presence_session", "agent_version",
    "first_seen", "last_seen", "last_health")
VALUES ('kiosk-440117000-01', 'kiosk', 'online', 3, '1.2.0', '2026-01-02 03:04:05+00:00',
    '2026-01-02 04:00:00+00:00', '{"seq": 9}');
INSERT INTO "record" ("device_id", "seq", "channel", "type", "device_time", "received_at",
    "payload")
VALUES ('kiosk-440117000-01', 1, 'usage', 'session', NULL, '2026-01-02 03:04:06+00:00',
    '{"seq": 1}');
INSERT INTO "rejected_message" ("topic", "device_id", "seq", "reason", "detail", "payload",
    "received_at")
VALUES ('termfleet/v1/up/x/usage', NULL, NULL, 'malformed', 'not JSON', 'xx',
    '2026-01-02 03:04:07+00:00');
"""


async def at_initial(url: str, *, seed: bool = True) -> None:
    """A database migrated to 0001_initial only, with the skeleton's rows in it."""
    async with connect(url) as ctx:
        assert await migrator.upgrade(client(ctx), migrator.INITIAL) == [migrator.INITIAL]
        if seed:
            await client(ctx).execute_script(SEED_AT_INITIAL)


async def upgrade_keeps_data(database_url: str) -> None:
    await at_initial(database_url)

    async with database(database_url) as ctx:
        state = await migrator.status(client(ctx))
        device = await Device.get(device_id="kiosk-440117000-01")
        records = await StoredRecord.all()
        rejected = await RejectedMessage.all()

        assert state.applied == state.known
        assert state.current == LATEST[-1]
        assert (device.kind, device.presence, device.presence_session) == ("kiosk", "online", 3)
        assert device.agent_version == "1.2.0"
        assert device.last_health == {"seq": 9}
        # The columns 0002 added hold their defaults for the rows that were there.
        assert (device.serial, device.labels, device.lifecycle) == ("", {}, "registered")
        # ... and those of 0007: no broker credentials yet, no self-test.
        assert (device.broker_generation, device.enrolled_at, device.self_test) == (0, None, {})
        assert device.site_id is None
        assert device.window_id is None
        assert [(r.device_id, r.seq, r.payload) for r in records] == [
            ("kiosk-440117000-01", 1, '{"seq": 1}')
        ]
        assert [r.reason for r in rejected] == ["malformed"]
        with pytest.raises(IntegrityError):
            await StoredRecord.create(
                device_id="kiosk-440117000-01",
                seq=1,
                channel="usage",
                type="session",
                received_at=records[0].received_at,
                payload="{}",
            )
        # ... and the new tables work with the old rows: the import places the old device.
        await import_inventory(read(CONGHUA))
        placed = await Device.get(device_id="kiosk-440117000-01").prefetch_related("site")
        assert placed.site is not None
        assert placed.site.code == "440117000"
        assert placed.presence_session == 3
        # ... and 0003's: a token scoped to a node of the imported tree, and its audit entry.
        issued = await tokens.issue("ops", Role.OPERATOR, actor=Actor(None, "t"), scope_code="44")
        principal = await tokens.authenticate(issued.secret, datetime.now(UTC))
        assert principal.scope_path == "/44/"
        assert await AuditEntry.filter(action="token.create").count() == 1
        # ... and 0008's: the content repository's table, there and empty.
        assert await ContentPackage.all().count() == 0
        # ... and 0009's: the device twin's tables, there and empty.
        assert await DeviceTwin.all().count() == 0


async def test_a_database_at_the_first_migration_upgrades_to_the_latest_keeping_its_data(
    database_url: str,
) -> None:
    await upgrade_keeps_data(database_url)


async def test_a_database_from_before_migrations_is_adopted_not_created_again(
    database_url: str,
) -> None:
    await at_initial(database_url)
    async with connect(database_url) as ctx:
        await client(ctx).execute_script('DROP TABLE "tortoise_migrations"')
        before = await migrator.status(client(ctx))

    async with database(database_url) as ctx:
        after = await migrator.status(client(ctx))
        assert await Device.filter(device_id="kiosk-440117000-01").count() == 1

    assert before.adoptable
    assert before.applied == ()
    assert after.applied == after.known
    assert not after.adoptable


async def test_the_first_migration_creates_the_schema_from_before_migrations(
    sqlite_url: str,
) -> None:
    await at_initial(sqlite_url, seed=False)
    async with connect(sqlite_url) as ctx:
        _, rows = await client(ctx).execute_query(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
            " AND name NOT IN ('sqlite_sequence', 'tortoise_migrations')"
        )

    assert {row["name"]: " ".join(row["sql"].split()) for row in rows} == SCHEMA_BEFORE_MIGRATIONS


async def test_the_migrations_match_the_models() -> None:
    """Fails when a model changed without a migration: run makemigrations (docs/development.md)."""
    apps = migrator.apps_config("sqlite")
    async with TortoiseContext() as ctx:
        await ctx.init(config={"connections": {"sqlite": "sqlite://:memory:"}, "apps": apps})
        assert ctx.apps is not None
        changes = await MigrationAutodetector(ctx.apps, apps).changes()

    assert [writer.as_string() for writer in changes] == []


async def test_opening_twice_applies_nothing_the_second_time(database_url: str) -> None:
    async with database(database_url) as ctx:
        first = await migrator.status(client(ctx))
    async with connect(database_url) as ctx:
        assert await migrator.upgrade(client(ctx)) == []
        _, rows = await client(ctx).execute_query('SELECT "name" FROM "tortoise_migrations"')

    assert sorted(row["name"] for row in rows) == list(first.known)


async def test_a_database_ahead_of_this_termfleet_is_refused(database_url: str) -> None:
    async with database(database_url) as ctx:
        await client(ctx).execute_script(
            'INSERT INTO "tortoise_migrations" ("app", "name", "applied_at")'
            " VALUES ('models', '0099_from_the_future', CURRENT_TIMESTAMP)"
        )

    with pytest.raises(DatabaseError, match=r"0099_from_the_future\): a newer termfleet"):
        async with database(database_url):
            pass
    with pytest.raises(DatabaseError, match="a newer termfleet"):
        async with database(database_url, migrate=False):
            pass


async def test_without_auto_migration_a_database_behind_is_refused_naming_the_command(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await at_initial(database_url)
    monkeypatch.setenv(AUTO_MIGRATE_ENV, "0")

    with pytest.raises(DatabaseError, match=f"{len(LATEST) - 1} migration") as refused:
        async with database(database_url):
            pass

    assert "its schema is at 0001_initial" in str(refused.value)
    pending = ", ".join(LATEST[1:])
    assert f"({pending}); run `termfleet db migrate --database-url " in str(refused.value)
    async with connect(database_url) as ctx:
        assert (await migrator.status(client(ctx))).pending == tuple(LATEST[1:])


async def test_migrating_to_a_target_the_database_is_past_is_refused(database_url: str) -> None:
    async with database(database_url) as ctx:
        with pytest.raises(migrator.MigrationError, match="migrations only go forward"):
            await migrator.upgrade(client(ctx), migrator.INITIAL)
        with pytest.raises(migrator.MigrationError, match="unknown migration '0007_nope'"):
            await migrator.upgrade(client(ctx), "0007_nope")


def test_processes_starting_together_migrate_once(database_url: str) -> None:
    """Three `termfleet db migrate` at once (replicas on PostgreSQL); a lock lines them up."""
    command = [sys.executable, "-m", "control_plane.cli", "db", "migrate", "--json"]
    procs = [
        subprocess.Popen(
            [*command, "--database-url", database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [proc.communicate(timeout=60) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0, 0], results
    applied = [json.loads(out)["migrated"] for out, _ in results]
    assert sorted(name for names in applied for name in names) == LATEST

    async def recorded() -> list[str]:
        async with connect(database_url) as ctx:
            _, rows = await client(ctx).execute_query('SELECT "name" FROM "tortoise_migrations"')
            return sorted(row["name"] for row in rows)

    assert asyncio.run(recorded()) == LATEST


# --- termfleet db ----------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), prog_name="termfleet")
    return result.exit_code, result.stdout, result.stderr


def test_db_status_and_migrate_from_the_command_line(database_url: str) -> None:
    url = ["--database-url", database_url]

    code, out, err = run("db", "status", *url)
    assert code == 0, err
    assert out.split() == [
        "MIGRATION",
        "STATE",
        *(word for name in LATEST for word in (name, "pending")),
    ]
    assert f"empty, {len(LATEST)} pending: run `termfleet db migrate`" in err

    code, out, err = run("db", "migrate", "--to", "0001_initial", "--json", *url)
    assert code == 0, err
    assert json.loads(out)["migrated"] == ["0001_initial"]
    assert json.loads(out)["pending"] == LATEST[1:]

    code, out, err = run("db", "migrate", *url)
    assert (code, out) == (0, "".join(f"applied {name}\n" for name in LATEST[1:])), err
    assert f"up to date at {LATEST[-1]}" in err

    code, out, _ = run("db", "status", "--json", *url)
    assert json.loads(out) == {
        "current": LATEST[-1],
        "latest": LATEST[-1],
        "applied": LATEST,
        "pending": [],
        "unknown": [],
        "adoptable": False,
    }


def test_db_migrate_refuses_to_go_back_with_a_clean_error(sqlite_url: str) -> None:
    assert run("db", "migrate", "--database-url", sqlite_url)[0] == 0

    code, out, err = run("db", "migrate", "--to", "0001_initial", "--database-url", sqlite_url)

    assert code == 1
    assert out == ""
    assert err == (
        f"Error: database {sqlite_url}: at {LATEST[-1]}, past 0001_initial:"
        " migrations only go forward\n"
    )


def test_db_refuses_an_unsupported_url() -> None:
    code, _, err = run("db", "status", "--database-url", "mysql://x/y")

    assert code == 1
    assert err.startswith("Error: unsupported database URL 'mysql://x/y'")
