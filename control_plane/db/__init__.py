"""Storage: tortoise-orm on a SQLite file by default, PostgreSQL by URL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from tortoise.context import TortoiseContext

MODELS_MODULE = "control_plane.db.models"
DEFAULT_DATABASE_URL = "sqlite://termfleet.sqlite3"


def normalise_url(url: str) -> str:
    """Accept postgresql:// as well as tortoise's postgres://; create a SQLite file's folder."""
    if url.startswith("postgresql://"):
        url = "postgres://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite://") and url != "sqlite://:memory:":
        Path(url.removeprefix("sqlite://")).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return url


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
        await ctx.init(config=config)
        await ctx.generate_schemas(safe=True)
        yield ctx
