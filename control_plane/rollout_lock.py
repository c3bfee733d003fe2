"""The database's rollout lock: whoever holds it drives the rollouts, and says where it listens.

The rollout executor keeps every rollout in memory, so one process per database may run it
(``rollout_driver``). This is the lock that decides which, and tells the others the holder's
URL so that they can forward the rollouts API to it.

- PostgreSQL: a session-level advisory lock, on a connection of its own rather than one of the
  pool's, held for as long as that connection lives. A killed process loses it at once (its
  socket closes), a vanished host once PostgreSQL's keepalives find the session dead. The
  connection's ``application_name`` names the holder's URL, read by the others from
  ``pg_locks`` and ``pg_stat_activity``.
- SQLite: an exclusive ``flock`` on a file beside the database, holding the URL; for the
  processes of one host, which is all that can share a SQLite file.
- An in-memory SQLite database has one process: it always holds its lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

import asyncpg
from tortoise.backends.base.config_generator import expand_db_url

from .db import DATABASE_ERRORS, normalise_url
from .db.migrator import ADVISORY_LOCK_KEY

LOCK_KEY = ADVISORY_LOCK_KEY + 1
"""The rollout lock's advisory key: the migrations' own, plus one. Advisory locks are per
database, so replicas of different databases on one PostgreSQL server do not meet."""
APPLICATION_PREFIX = "termfleet-rollouts "
MAX_URL_CHARS = 63 - len(APPLICATION_PREFIX)
"""PostgreSQL keeps 63 bytes of an ``application_name``; the URL gets what the prefix leaves."""
CHECK_TIMEOUT_S = 5.0
KEEPALIVE = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
"""Asked of PostgreSQL for the lock's session: a holder whose host vanished without closing its
socket loses the lock after about 25 s, not the system's default two hours."""
LOST: tuple[type[Exception], ...] = (TimeoutError, *DATABASE_ERRORS)
"""What a lock connection that is gone (or hangs) raises."""
_HOLDER_SQL = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.classid::bigint = $1 AND l.objid::bigint = $2 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


class RolloutLockError(RuntimeError):
    """The lock cannot be used as configured (a URL too long to be named by it)."""


class RolloutLock(Protocol):
    async def take(self) -> bool:
        """Take the lock if it is free (or already ours); False if another holds it."""
        ...

    async def held(self) -> bool:
        """Whether we still hold it: False once the connection that holds it is lost."""
        ...

    async def holder(self) -> str | None:
        """The URL of the process holding it; None when free or not known."""
        ...

    async def release(self) -> None: ...


def rollout_lock(database_url: str, own_url: str) -> RolloutLock:
    """The lock of ``database_url``'s rollouts, to be held by the process at ``own_url``."""
    url = normalise_url(database_url)
    if url.startswith("postgres://"):
        return PostgresRolloutLock(url, own_url)
    path = url.removeprefix("sqlite://")
    if path == ":memory:":
        return OwnLock()
    return FileRolloutLock(Path(f"{path}-rollouts-lock"), own_url)


class OwnLock:
    """The lock of a database only this process can open: always ours."""

    async def take(self) -> bool:
        return True

    async def held(self) -> bool:
        return True

    async def holder(self) -> str | None:
        return None

    async def release(self) -> None:
        return None


class PostgresRolloutLock:
    """A session advisory lock on a connection of its own, named after the holder's URL."""

    def __init__(self, database_url: str, own_url: str) -> None:
        if len(own_url.encode()) > MAX_URL_CHARS:
            msg = (
                f"the URL other replicas reach this one at, {own_url!r}, is longer than the "
                f"{MAX_URL_CHARS} characters the rollout lock can name (give a shorter --peer-url)"
            )
            raise RolloutLockError(msg)
        credentials = expand_db_url(database_url)["credentials"]
        self._connect = {
            key: credentials[key]
            for key in ("host", "port", "user", "password", "database", "ssl")
            if credentials.get(key) is not None
        }
        self._application = APPLICATION_PREFIX + own_url
        self._connection: asyncpg.Connection | None = None
        self._ours = False

    async def _opened(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._ours = False
            self._connection = await asyncpg.connect(
                **self._connect,
                timeout=CHECK_TIMEOUT_S,
                server_settings={"application_name": self._application, **KEEPALIVE},
            )
        return self._connection

    async def _fetch(self, sql: str, *args: object) -> object:
        """One value on the lock's connection, within ``CHECK_TIMEOUT_S``; a lost one is dropped.

        A standby's connection that went silent (a firewall forgot it) would otherwise hang its
        tries until TCP gives up, a quarter of an hour, and no replica would take over.
        """
        connection = await self._opened()
        try:
            return await connection.fetchval(sql, *args, timeout=CHECK_TIMEOUT_S)
        except LOST:
            await self._drop()
            raise

    async def take(self) -> bool:
        if self._ours and await self.held():
            return True
        self._ours = bool(await self._fetch("SELECT pg_try_advisory_lock($1)", LOCK_KEY))
        return self._ours

    async def held(self) -> bool:
        if not self._ours or self._connection is None or self._connection.is_closed():
            return False
        try:
            await self._fetch("SELECT 1")
        except LOST:
            return False
        return True  # the session lives, and a session-level lock lives with it

    async def holder(self) -> str | None:
        name = await self._fetch(_HOLDER_SQL, LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF)
        if not isinstance(name, str) or not name.startswith(APPLICATION_PREFIX):
            return None
        return name.removeprefix(APPLICATION_PREFIX)

    async def release(self) -> None:
        await self._drop()  # the lock goes with the session

    async def _drop(self) -> None:
        self._ours = False
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with contextlib.suppress(*LOST):
                await asyncio.wait_for(connection.close(), CHECK_TIMEOUT_S)
        if connection is not None:
            connection.terminate()  # a close that did not finish still frees the socket


class FileRolloutLock:
    """An exclusive ``flock`` on a file beside the SQLite database, holding the holder's URL.

    Never the database file itself: closing any descriptor of that file would drop the POSIX
    locks SQLite holds on it in this process.
    """

    def __init__(self, path: Path, own_url: str) -> None:
        self._path = path
        self._own_url = own_url
        self._descriptor: int | None = None

    async def take(self) -> bool:
        if self._descriptor is not None:
            return True
        descriptor = os.open(self._path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        os.ftruncate(descriptor, 0)
        os.write(descriptor, self._own_url.encode())
        self._descriptor = descriptor
        return True

    async def held(self) -> bool:
        return self._descriptor is not None

    async def holder(self) -> str | None:
        if self._descriptor is not None:
            return self._own_url
        try:
            descriptor = os.open(self._path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:  # a shared lock granted: nobody holds it, the URL is a dead holder's
                fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.read(descriptor, 4096).decode(errors="replace").strip() or None
            return None
        finally:
            os.close(descriptor)  # releases a shared lock taken here

    async def release(self) -> None:
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is not None:
            os.close(descriptor)  # releases the lock
