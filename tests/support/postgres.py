"""Find a PostgreSQL server for tests and hand out a throwaway database per test."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class PostgresServer:
    """A reachable server; ``admin_url`` names a database we may CREATE DATABASE from."""

    admin_url: str

    def url_for(self, database: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit(parts._replace(path=f"/{database}"))

    @contextlib.contextmanager
    def temporary_database(self, template: str | None = None) -> Iterator[str]:
        """A new database, empty or a copy of ``template`` (a database nobody is connected to)."""
        name = f"termfleet_test_{uuid.uuid4().hex[:12]}"
        copy_of = f' TEMPLATE "{template}"' if template else ""
        asyncio.run(self._execute(f'CREATE DATABASE "{name}"{copy_of}'))
        try:
            yield self.url_for(name)
        finally:
            asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_url, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


@functools.cache
def find_postgres() -> PostgresServer | None:
    """The server named by TERMFLEET_TEST_POSTGRES, else the local service, else None."""
    url = os.environ.get("TERMFLEET_TEST_POSTGRES") or DEFAULT_URL
    server = PostgresServer(url)
    try:
        asyncio.run(server._execute("SELECT 1"))  # noqa: SLF001 - probing our own helper
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    return server
