"""Schema migrations: which are applied, which are pending, and applying them, forward only.

The migrations are tortoise-orm's own (``tortoise.migrations``), kept in
``control_plane/db/migrations/``; the database records the applied ones in
``tortoise_migrations``. A lock makes processes that start together migrate one after the
other (replicas on PostgreSQL; the server and a command on one SQLite file). A database
created before migrations existed (the schema of ``0001_initial`` without
``tortoise_migrations``) is adopted: ``0001_initial`` is recorded as applied without running it.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget
from tortoise.migrations.graph import MigrationKey

log = logging.getLogger(__name__)

APP = "models"
MODELS_MODULE = "control_plane.db.models"
MIGRATIONS_MODULE = "control_plane.db.migrations"
INITIAL = "0001_initial"
# The tables 0001_initial creates: a database holding them and no migration record predates
# migrations (``generate_schemas``) and is adopted at 0001_initial.
INITIAL_TABLES = frozenset({"device", "record", "rejected_message"})
# pg_advisory_lock key: "termflt" in ASCII, an arbitrary constant of this application.
ADVISORY_LOCK_KEY = 0x7465726D666C74


class MigrationError(RuntimeError):
    """The schema cannot be brought to the requested migration; the message says why."""


@dataclass(frozen=True)
class MigrationStatus:
    """Where a database stands against the migrations this termfleet knows."""

    known: tuple[str, ...]
    """Every migration of this termfleet, in the order they apply."""
    applied: tuple[str, ...]
    """Known migrations the database has, in the order they apply."""
    unknown: tuple[str, ...] = ()
    """Migrations the database has that this termfleet does not know: it is newer."""
    adoptable: bool = False
    """A database from before migrations: 0001_initial will be recorded, not run."""

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(name for name in self.known if name not in self.applied)

    @property
    def current(self) -> str | None:
        return self.applied[-1] if self.applied else None

    @property
    def latest(self) -> str | None:
        return self.known[-1] if self.known else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "latest": self.latest,
            "applied": list(self.applied),
            "pending": list(self.pending),
            "unknown": list(self.unknown),
            "adoptable": self.adoptable,
        }


def apps_config(connection: str) -> dict[str, dict[str, Any]]:
    """The tortoise ``apps`` section: termfleet's models and their migrations on ``connection``."""
    return {
        APP: {
            "models": [MODELS_MODULE],
            "default_connection": connection,
            "migrations": MIGRATIONS_MODULE,
        }
    }


async def status(client: BaseDBAsyncClient) -> MigrationStatus:
    """Read the database's migration record; changes nothing."""
    executor = _executor(client)
    await executor.loader.build_graph()
    known = _ordered(executor)
    recorded = [key.name for key in await executor.recorder.applied_migrations()]
    adoptable = not recorded and await table_names(client) >= INITIAL_TABLES
    return MigrationStatus(
        known=tuple(known),
        applied=tuple(name for name in known if name in recorded),
        unknown=tuple(name for name in recorded if name not in known),
        adoptable=adoptable,
    )


async def upgrade(client: BaseDBAsyncClient, target: str | None = None) -> list[str]:
    """Apply the pending migrations up to ``target`` (default: all); return the names applied.

    Refuses a database that has migrations this termfleet does not know, and a ``target`` the
    database is already past (there are no downgrades).
    """
    async with _migration_lock(client):
        before = await status(client)
        _check_upgrade(before, target)
        executor = _executor(client)
        await executor.recorder.ensure_schema(executor._schema_editor(atomic=False))  # noqa: SLF001 - tortoise's executor owns the editor for its recorder
        if before.adoptable:
            log.info("database: adopting a schema from before migrations as %s", INITIAL)
            await executor.recorder.record_applied(APP, INITIAL)
        done: list[str] = []

        def progress(event: str, _app: str, name: str) -> None:
            if event == "apply_start":
                log.info("database: applying migration %s", name)
            elif event == "apply_done":
                done.append(name)

        goal = MigrationTarget(APP, target or "__latest__")
        try:
            await executor.migrate([goal], direction="forward", progress=progress)
        except ValueError as exc:
            raise MigrationError(str(exc)) from exc
        return ([INITIAL] if before.adoptable else []) + done


def check_known(status: MigrationStatus) -> None:
    """Refuse a database that a newer termfleet has migrated."""
    if status.unknown:
        msg = (
            f"has migrations this termfleet does not know ({', '.join(status.unknown)}):"
            " a newer termfleet upgraded it; run that version, or restore a backup"
        )
        raise MigrationError(msg)


def _check_upgrade(before: MigrationStatus, target: str | None) -> None:
    check_known(before)
    if target is None:
        return
    if target not in before.known:
        msg = f"unknown migration {target!r}; known: {', '.join(before.known)}"
        raise MigrationError(msg)
    if target in before.applied and target != before.current:
        msg = f"at {before.current}, past {target}: migrations only go forward"
        raise MigrationError(msg)


async def table_names(client: BaseDBAsyncClient) -> set[str]:
    """The tables of the database (of the current schema on PostgreSQL)."""
    if client.capabilities.dialect == "postgres":
        sql = "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    _, rows = await client.execute_query(sql)
    return {str(row["name"]) for row in rows}


def _executor(client: BaseDBAsyncClient) -> MigrationExecutor:
    return MigrationExecutor(client, apps_config(client.connection_name))


def _ordered(executor: MigrationExecutor) -> list[str]:
    graph = executor.loader.graph
    leaves: list[MigrationKey] = graph.leaf_nodes(APP)
    if len(leaves) > 1:
        names = ", ".join(leaf.name for leaf in leaves)
        msg = f"the migrations branch ({names}): make one depend on the other"
        raise MigrationError(msg)
    return [key.name for key in graph.forwards_plan(leaves[0])] if leaves else []


@asynccontextmanager
async def _migration_lock(client: BaseDBAsyncClient) -> AsyncIterator[None]:
    """Hold a lock so that one process at a time migrates the database.

    PostgreSQL: a session advisory lock. SQLite: an exclusive lock on a file beside the
    database (never on the database file itself: closing any descriptor of that file would drop
    the POSIX locks SQLite holds on it in this process).
    """
    if client.capabilities.dialect != "postgres":
        filename = str(getattr(client, "filename", ":memory:"))
        if filename == ":memory:":
            yield
            return
        lock = os.open(f"{filename}-migrate-lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock)  # releases the lock
        return
    async with client.acquire_connection() as connection:
        await connection.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        try:
            yield
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
