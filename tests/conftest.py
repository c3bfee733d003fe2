"""Shared fixtures: real Mosquitto, a migrated SQLite file per test, PostgreSQL when reachable.

One broker serves the whole session (each xdist worker runs a session of its own); a test that
breaks its broker, or counts every device on it, gets one of its own. See tests/README.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import pytest

from control_plane.db import database
from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import free_port
from tests.support.postgres import PostgresServer, find_postgres


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerSettings]:
    """One Mosquitto for the whole session; tests keep apart by unique device ids."""
    settings = BrokerSettings(workdir=tmp_path_factory.mktemp("broker"), port=free_port())
    proc = start_broker(settings)
    yield settings
    proc.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[BrokerSettings, object]]:
    """A Mosquitto of this test's own, for tests that kill or restart it."""
    settings = BrokerSettings(workdir=tmp_path / "broker", port=free_port())
    proc = start_broker(settings)
    yield settings, proc
    proc.stop()


@pytest.fixture
def device_prefix() -> str:
    """A prefix for device ids unique to this test, so tests sharing the broker never meet."""
    return f"t{uuid.uuid4().hex[:10]}"


def _migrate(url: str) -> None:
    async def migrate() -> None:
        async with database(url, migrate=True):
            pass

    asyncio.run(migrate())


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the latest migration, copied for each test that wants a database.

    Migrating costs about a second a database, and most tests only use the schema.
    """
    path = tmp_path_factory.mktemp("template") / "migrated.sqlite3"
    _migrate(f"sqlite://{path}")
    return path


@pytest.fixture(scope="session")
def migrated_postgres() -> Iterator[str]:
    """The name of a PostgreSQL database at the latest migration, the template of each test's."""
    server = _postgres_server()
    with server.temporary_database() as url:
        _migrate(url)
        yield urlsplit(url).path.lstrip("/")


def _postgres_server() -> PostgresServer:
    """The server the PostgreSQL half of ``database_url`` runs on; chosen, so it must answer."""
    server = find_postgres()
    if server is None:
        pytest.fail("TERMFLEET_TEST_POSTGRES is set but no PostgreSQL server answers")
    return server


def _wants_empty(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("empty_database") is not None


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite database of this test's own, migrated unless the test is ``empty_database``."""
    path = tmp_path / "termfleet.sqlite3"
    if not _wants_empty(request):
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
    return f"sqlite://{path}"


@pytest.fixture(scope="session")
def postgres() -> PostgresServer | None:
    return find_postgres()


DATABASE_BACKENDS = pytest.StashKey[list[str]]()
# The key under which pytest-xdist hands the controller's choice of backends to each worker.
BACKENDS_WORKERINPUT = "termfleet_database_backends"


def pytest_configure(config: pytest.Config) -> None:
    # Tests that take ``database_url`` run on SQLite always and on PostgreSQL wherever a server is
    # reachable; ./dev test sets TERMFLEET_TEST_POSTGRES so that CI cannot quietly lose the second.
    # Under xdist the controller probes once and every worker takes its answer: xdist refuses a run
    # whose workers collected different tests, as they would if one probe timed out on a busy host.
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.stash[DATABASE_BACKENDS] = list(workerinput[BACKENDS_WORKERINPUT])
        return
    backends = ["sqlite"]
    if os.environ.get("TERMFLEET_TEST_POSTGRES") or find_postgres() is not None:
        backends.append("postgres")
    config.stash[DATABASE_BACKENDS] = backends


class XdistWorkerController(Protocol):
    """What ``pytest_configure_node`` uses of xdist's WorkerController (xdist ships no types)."""

    config: pytest.Config
    workerinput: dict[str, Any]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: XdistWorkerController) -> None:
    """Hand each xdist worker the backends the controller chose (see ``pytest_configure``)."""
    node.workerinput[BACKENDS_WORKERINPUT] = node.config.stash[DATABASE_BACKENDS]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "database_url" in metafunc.fixturenames:
        backends = metafunc.config.stash[DATABASE_BACKENDS]
        metafunc.parametrize("database_url", backends, indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of this test's own on each backend, migrated unless it is ``empty_database``."""
    if request.param == "sqlite":
        yield request.getfixturevalue("sqlite_url")
        return
    server = _postgres_server()
    template = None if _wants_empty(request) else request.getfixturevalue("migrated_postgres")
    with server.temporary_database(template) as url:
        yield url


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Nothing taken away by the umask: a file's mode must come from the code itself."""
    old = os.umask(0)
    yield
    os.umask(old)
