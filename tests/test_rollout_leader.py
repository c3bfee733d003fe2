"""One replica drives the rollouts, chosen by the database's rollout lock; the others forward.

The lock on both databases (a PostgreSQL advisory lock on a connection of its own, an ``flock``
beside a SQLite file), then real ``termfleet server run`` processes on one database: the first
drives, the second forwards the rollouts API to it, and takes over once the first is killed
with SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from control_plane.auth import Role
from control_plane.cli import cli
from control_plane.rollout_driver import HANDOVER_S, TRY_INTERVAL_S
from control_plane.rollout_lock import (
    APPLICATION_PREFIX,
    MAX_URL_CHARS,
    RolloutLockError,
    rollout_lock,
)
from control_plane.services.broker import BrokerSettings
from control_plane.services.processes import ManagedProcess, free_port
from tests.support.control_plane import running_control_plane
from tests.support.postgres import PostgresServer
from tests.support.tokens import issue_token

A, B = "http://replica-a:8080", "http://replica-b:8080"
TAKEOVER_S = TRY_INTERVAL_S + HANDOVER_S + 10.0
"""A standby's next try, the hand-over's wait, and the time to load the rollouts and answer."""


async def test_one_holder_at_a_time_named_to_the_others(database_url: str) -> None:
    first, second = rollout_lock(database_url, A), rollout_lock(database_url, B)
    try:
        assert await first.take()
        assert await first.take()  # taking it again is no error
        assert not await second.take()
        assert await second.holder() == A
        assert await first.held()
        assert not await second.held()
        await first.release()
        assert not await first.held()
        assert await second.take()
        assert await first.holder() == B
        assert not await first.take()
    finally:
        await first.release()
        await second.release()


def test_a_holder_whose_connection_dies_loses_the_lock(postgres: PostgresServer | None) -> None:
    """PostgreSQL ends the dead session's lock; the holder sees it lost, a standby takes it.

    PostgreSQL only: a SQLite lock is the process's own file lock, with no connection to lose.
    """
    if postgres is None:
        pytest.fail("needs PostgreSQL: run ./dev test, which installs and starts it")
    with postgres.temporary_database() as url:
        asyncio.run(_connection_dies(url))


async def _connection_dies(database_url: str) -> None:
    first, second = rollout_lock(database_url, A), rollout_lock(database_url, B)
    admin = await asyncpg.connect(database_url)
    try:
        assert await first.take()
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            APPLICATION_PREFIX + A,
        )
        assert ended == 1
        assert not await first.held()
        assert await second.take()
        assert await second.holder() == B
    finally:
        await admin.close()
        await first.release()
        await second.release()


def test_a_url_the_lock_cannot_name_is_refused() -> None:
    too_long = "http://" + "r" * MAX_URL_CHARS
    with pytest.raises(RolloutLockError, match="longer than"):
        rollout_lock("postgres://postgres@127.0.0.1:5432/postgres", too_long)
    rollout_lock("sqlite:///tmp/any.sqlite3", too_long)  # a file holds any URL


async def test_a_lone_replica_without_rollouts_says_none_drives_them(
    broker: BrokerSettings, sqlite_url: str
) -> None:
    async with running_control_plane(broker, sqlite_url, rollouts=False) as cp:
        async with cp.http.get(cp.url + "/api/v1/rollouts") as response:
            body = await response.json()
        assert (response.status, response.headers["Retry-After"]) == (503, "5")
        assert body["error"]["code"] == "rollouts_undriven"
        assert "--no-rollouts" in body["error"]["message"]
        assert "termfleet_rollouts_driving 0.0" in await cp.metrics()
        devices = await cp.get_json("/api/v1/devices")  # the rest of the API answers
        assert devices["items"] == []


async def test_a_driver_that_does_not_answer_is_a_503_not_a_hang(
    broker: BrokerSettings, database_url: str
) -> None:
    """The lock is held by a process whose HTTP port answers nothing (it hangs, or is going)."""
    gone = f"http://127.0.0.1:{free_port()}"
    holder = rollout_lock(database_url, gone)
    assert await holder.take()
    try:
        async with running_control_plane(broker, database_url) as cp:
            async with cp.http.get(cp.url + "/api/v1/rollouts") as response:
                body = await response.json()
            assert response.status == 503
            assert body["error"]["code"] == "rollouts_elsewhere"
            assert gone in body["error"]["message"]
            assert "termfleet_rollouts_driving 0.0" in await cp.metrics()
    finally:
        await holder.release()


# --- two replicas as processes --------------------------------------------------------------


class Replica:
    def __init__(self, tmp_path: Path, broker: BrokerSettings, database_url: str, n: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            sys.executable, "-m", "control_plane.cli", "server", "run",
            "--database-url", database_url, "--mqtt-url", broker.url,
            "--http-port", str(self.port), "--client-id", f"cp-leader-{n}-{self.port}",
            "--ingest-session-expiry", "0",
        ]  # fmt: skip
        self.process = ManagedProcess(f"replica-{n}", argv, tmp_path / f"cp-{n}.log")

    def start(self) -> Replica:
        self.process.start_and_wait_port("127.0.0.1", self.port)
        return self

    def driving(self) -> bool:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:  # noqa: S310
            return "termfleet_rollouts_driving 1.0" in response.read().decode()

    def call(
        self, method: str, path: str, token: str, body: object = None, *, forwarded: bool = False
    ) -> tuple[int, dict[str, str], dict[str, object]]:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if forwarded:
            headers["X-Termfleet-Forwarded"] = "1"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data, headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, dict(response.headers), json.load(response)
        except urllib.error.HTTPError as refused:
            return refused.code, dict(refused.headers), json.load(refused)


@pytest.fixture
def replicas(
    tmp_path: Path, broker: BrokerSettings, database_url: str
) -> Iterator[tuple[Replica, Replica]]:
    first = Replica(tmp_path, broker, database_url, 1).start()
    second = Replica(tmp_path, broker, database_url, 2)
    try:
        second.start()
        yield first, second
    finally:
        second.process.stop()
        first.process.stop()


def until(check: object, timeout_s: float) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout_s``."""
    started = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.mark.slow
def test_the_standby_forwards_and_takes_over_when_the_driver_is_killed(
    replicas: tuple[Replica, Replica], database_url: str
) -> None:
    first, second = replicas
    token = asyncio.run(issue_token(database_url, Role.ADMIN))
    assert first.driving()
    assert not second.driving()

    status, headers, body = second.call("GET", "/api/v1/rollouts", token)
    assert (status, headers["X-Termfleet-Rollouts-Driver"]) == (200, first.url)
    assert body["items"] == []
    # The body and the method go along: the driver's own refusal of a bad rollout comes back.
    status, headers, body = second.call("POST", "/api/v1/rollouts", token, {"package": 5})
    assert (status, headers["X-Termfleet-Rollouts-Driver"]) == (400, first.url)
    assert body == first.call("POST", "/api/v1/rollouts", token, {"package": 5})[2]
    assert body["error"]["code"] == "invalid_field"  # type: ignore[index]
    # Without a token the standby refuses at once, as every route does.
    status, _, body = second.call("GET", "/api/v1/rollouts", "wrong")
    assert status == 401
    # A forwarded request is never forwarded again.
    status, _, body = second.call("GET", "/api/v1/rollouts", token, forwarded=True)
    assert (status, body["error"]["code"]) == (503, "rollouts_elsewhere")  # type: ignore[index]

    first.process.signal(signal.SIGKILL)
    took = until(second.driving, TAKEOVER_S)
    print(f"\nrollouts taken over {took:.1f} s after the driver was killed")  # noqa: T201
    status, headers, body = second.call("GET", "/api/v1/rollouts", token)
    assert status == 200
    assert "X-Termfleet-Rollouts-Driver" not in headers  # answered from its own memory

    first.start()  # back, it stands by and forwards to the new driver
    assert not first.driving()
    status, headers, _ = first.call("GET", "/api/v1/rollouts", token)
    assert (status, headers["X-Termfleet-Rollouts-Driver"]) == (200, second.url)


def test_the_peer_url_option_names_the_locks_limit() -> None:
    help_text = CliRunner().invoke(cli, ["server", "run", "--help"], terminal_width=200).output
    assert f"at most {MAX_URL_CHARS} characters" in " ".join(help_text.split())
