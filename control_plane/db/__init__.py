"""Storage: tortoise-orm on a SQLite file by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.context import TortoiseContext
from tortoise.exceptions import BaseORMException

from . import migrator

MODELS_MODULE = migrator.MODELS_MODULE
DEFAULT_DATABASE_URL = "sqlite://termfleet.sqlite3"
# Set to 0 to have the server refuse a database with pending migrations instead of applying them.
AUTO_MIGRATE_ENV = "TERMFLEET_AUTO_MIGRATE"
# For tortoise's own CLI, which writes new migrations from the models without a database:
#   .venv/bin/tortoise -c control_plane.db.TORTOISE_ORM makemigrations --name what_changed
TORTOISE_ORM = {
    "connections": {"sqlite": "sqlite://:memory:"},
    "apps": migrator.apps_config("sqlite"),
}


DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    sqlite3.Error,
    BaseORMException,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
"""What a database that fails or goes away raises: tortoise passes some of its drivers' errors
through untranslated (deadlocks, lock timeouts, a connection terminated mid-operation)."""


class DatabaseError(RuntimeError):
    """The database URL is unsupported or the database cannot be opened."""


def normalise_url(url: str) -> str:
    """Check the scheme, accept postgresql:// for postgres://, create a SQLite file's folder."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in {"sqlite", "postgres", "postgresql"}:
        msg = f"unsupported database URL {redact(url)!r}: use sqlite://PATH or postgres://..."
        raise DatabaseError(msg)
    if scheme == "postgresql":
        return f"postgres://{rest}"
    if scheme == "sqlite" and rest != ":memory:":
        path = Path(rest).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"cannot open database {url}: {exc}"
            raise DatabaseError(msg) from exc
        return f"sqlite://{path}"
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@contextlib.asynccontextmanager
async def connect(url: str) -> AsyncIterator[TortoiseContext]:
    """Open the database for the duration of the block, as it is: no schema check, no migration.

    For ``termfleet db``; everything else opens it with ``database``.
    """
    url = normalise_url(url)
    # tortoise caches compiled SQL per process keyed by connection *name* (EXECUTOR_CACHE), so
    # a process that opens SQLite and then PostgreSQL (the test suite does) would send SQLite's
    # SQL to PostgreSQL under a shared name. Naming the connection after its dialect keeps the
    # caches apart.
    connection = url.split(":", 1)[0]
    config = {"connections": {connection: url}, "apps": migrator.apps_config(connection)}
    async with TortoiseContext() as ctx:
        try:
            await ctx.init(config=config)
        except (OSError, BaseORMException) as exc:
            msg = f"cannot open database {redact(url)}: {exc}"
            raise DatabaseError(msg) from exc
        yield ctx


def opened_client() -> BaseDBAsyncClient:
    """The connection of the database this process (or task) opened with ``database``."""
    opened: BaseDBAsyncClient = connections.get(next(iter(connections.db_config)))
    return opened


async def database_answers() -> bool:
    """Whether the database answers ``SELECT 1``."""
    try:
        await opened_client().execute_query("SELECT 1")
    except DATABASE_ERRORS:
        return False
    return True


def client(ctx: TortoiseContext) -> BaseDBAsyncClient:
    """The one connection of a context opened by ``connect`` or ``database``."""
    return ctx.connections.get(next(iter(ctx.connections.db_config)))


@contextlib.asynccontextmanager
async def database(url: str, *, migrate: bool | None = None) -> AsyncIterator[TortoiseContext]:
    """Open the database for the duration of the block; tasks started inside it share it.

    Its schema is brought up to date first: pending migrations are applied when ``migrate`` is
    true, or, when it is None, unless ``TERMFLEET_AUTO_MIGRATE=0``; otherwise a database behind
    the code is refused with a message naming ``termfleet db migrate``. A database ahead of the
    code (migrated by a newer termfleet) is always refused.
    """
    if migrate is None:
        migrate = os.environ.get(AUTO_MIGRATE_ENV, "1").strip().lower() not in {"0", "false", "no"}
    async with connect(url) as ctx:
        async with _errors(url):
            if migrate:
                await migrator.upgrade(client(ctx))
            else:
                _refuse_when_behind(url, await migrator.status(client(ctx)))
        yield ctx


async def migration_status(url: str) -> migrator.MigrationStatus:
    """Where the database stands against this termfleet's migrations; changes nothing."""
    async with connect(url) as ctx, _errors(url):
        return await migrator.status(client(ctx))


async def migrate_to(url: str, target: str | None = None) -> list[str]:
    """Apply the pending migrations up to ``target`` (all by default); the names applied."""
    async with connect(url) as ctx, _errors(url):
        return await migrator.upgrade(client(ctx), target)


@contextlib.asynccontextmanager
async def _errors(url: str) -> AsyncIterator[None]:
    """Failures to reach the database, or to migrate it, as ``DatabaseError``."""
    try:
        yield
    except migrator.MigrationError as exc:
        msg = f"database {redact(url)}: {exc}"
        raise DatabaseError(msg) from exc
    except (OSError, BaseORMException) as exc:
        msg = f"cannot open database {redact(normalise_url(url))}: {exc}"
        raise DatabaseError(msg) from exc


def _refuse_when_behind(url: str, status: migrator.MigrationStatus) -> None:
    migrator.check_known(status)
    if status.pending:
        msg = (
            f"its schema is at {status.current or 'nothing'}, {len(status.pending)} migration(s)"
            f" behind ({', '.join(status.pending)}); run `termfleet db migrate --database-url"
            f" {redact(url)}` (or leave {AUTO_MIGRATE_ENV} unset to migrate on start)"
        )
        raise migrator.MigrationError(msg)
