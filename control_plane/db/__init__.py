"""Storage: tortoise-orm on a SQLite file by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tortoise.context import TortoiseContext
from tortoise.exceptions import BaseORMException

MODELS_MODULE = "control_plane.db.models"
DEFAULT_DATABASE_URL = "sqlite://termfleet.sqlite3"


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
        path.parent.mkdir(parents=True, exist_ok=True)
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
async def database(url: str) -> AsyncIterator[TortoiseContext]:
    """Open the database for the duration of the block; tasks started inside it share it.

    The schema is created if missing. Schema changes will go through migrations once the
    registry grows past the walking skeleton (see the control-plane issue).
    """
    url = normalise_url(url)
    # tortoise caches compiled SQL per process keyed by connection *name* (EXECUTOR_CACHE), so
    # a process that opens SQLite and then PostgreSQL (the test suite does) would send SQLite's
    # SQL to PostgreSQL under a shared name. Naming the connection after its dialect keeps the
    # caches apart.
    connection = url.split(":", 1)[0]
    config = {
        "connections": {connection: url},
        "apps": {"models": {"models": [MODELS_MODULE], "default_connection": connection}},
    }
    async with TortoiseContext() as ctx:
        try:
            await ctx.init(config=config)
            await ctx.generate_schemas(safe=True)
        except (OSError, BaseORMException) as exc:
            msg = f"cannot open database {redact(url)}: {exc}"
            raise DatabaseError(msg) from exc
        yield ctx
