"""Provisioning's chores outlive one bad request and one lost database connection.

The claim service and the broker reconcile run in the server's task group: whatever they let
escape stops the control plane, on every replica, and again at every start while the data
stays. On a real secured Mosquitto and real databases: a terminal whose device id passes for
one of termfleet's own broker logins (imported before imports refused such ids) is told to try
later, and the next terminal enrolls; a PostgreSQL connection terminated in the middle of a
query (tortoise passes that error through untranslated) is retried like any database error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from nacl.public import PrivateKey

from control_plane.db import database
from control_plane.db.models import Device
from control_plane.fleet import FleetState
from control_plane.inventory_files import read_json
from control_plane.inventory_store import import_inventory
from control_plane.metrics import ControlPlaneMetrics
from edge.agent.enroll import exchange, new_claim_id
from edge.mqtt import BrokerAddress
from edge.protocol import (
    CLAIM_USERNAME,
    BrokerEndpoint,
    ClaimRequest,
    ClaimResponse,
    ClaimStatus,
    DeviceKind,
)
from provisioning import claim_store, device_actions, dynsec, runner
from provisioning.claim_service import ClaimService
from provisioning.reconcile import Report
from provisioning.settings import ProvisioningSettings
from tests.support.postgres import PostgresServer
from tests.support.provisioning_stand import INVENTORY, SITE
from tests.support.tasks import running_task
from tests.support.tokens import TEST_ACTOR
from tests.test_broker_security import SecuredBroker, secured_broker_at

ANSWER_S = 5.0
"""A terminal's patience: a claim service that died answers nothing, and the test says so."""
WAIT_S = 20.0
RESERVED_SERIAL, NEXT_SERIAL = "SN-RESERVED", "SN-NEXT"
CLAIM_LOG = "provisioning.claim_service"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[SecuredBroker]:
    broker = secured_broker_at(tmp_path, secrets.token_bytes(32), [])
    yield broker
    broker.process.stop()


def settings_for(broker: SecuredBroker) -> ProvisioningSettings:
    return ProvisioningSettings(
        secret=broker.secret,
        broker=BrokerAddress("127.0.0.1", broker.settings.port),
        public_broker=BrokerEndpoint(),
    )


def postgres_server(postgres: PostgresServer | None) -> PostgresServer:
    if postgres is None:
        pytest.fail("needs PostgreSQL: run ./dev test, which installs and starts it")
    return postgres


async def site_code() -> str:
    """A claim code for the stand's site; its expiry on the wall clock the service reads."""
    await import_inventory(read_json(json.dumps(INVENTORY), "inventory.json"))
    made = await claim_store.create_token(
        TEST_ACTOR,
        site_code=SITE,
        max_uses=5,
        expires_in=timedelta(days=1),
        now=datetime.now(UTC),
    )
    return made.code


async def claim(broker: SecuredBroker, code: str, serial: str) -> ClaimResponse:
    """One enrollment attempt as ``termfleet agent enroll`` makes it, over the claim login."""
    address = BrokerAddress(
        "127.0.0.1",
        broker.settings.port,
        username=CLAIM_USERNAME,
        password=broker.password(CLAIM_USERNAME),
    )
    key = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
    request = ClaimRequest(
        claim_code=code, serial=serial, kind=DeviceKind.KIOSK, agent_public_key=key
    )
    return await exchange(address, new_claim_id(), request, ANSWER_S)


class _Listening(logging.Handler):
    def __init__(self, listening: asyncio.Event) -> None:
        super().__init__(logging.INFO)
        self._listening = listening

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("claim service listening"):
            self._listening.set()


@contextlib.asynccontextmanager
async def serving(service: ClaimService) -> AsyncIterator[asyncio.Task[None]]:
    """The service's ``run`` as the server runs it, once it has subscribed (it logs that)."""
    listening = asyncio.Event()
    handler = _Listening(listening)
    logger = logging.getLogger(CLAIM_LOG)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        async with running_task(service.run()) as task:
            async with asyncio.timeout(WAIT_S):
                await listening.wait()
            yield task
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def logged(caplog: pytest.LogCaptureFixture, start: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(start)]


# --- a device id reserved for termfleet's own logins ------------------------------------------


@pytest.mark.parametrize(
    "device_id",
    ["termfleet-kiosk-7", dynsec.CONTROL_PLANE_USERNAME],
    ids=["no-such-login", "the-control-planes-login"],
)
async def test_a_terminal_whose_device_id_is_reserved_is_told_to_try_later_and_the_next_enrolls(
    database_url: str,
    secured: SecuredBroker,
    caplog: pytest.LogCaptureFixture,
    device_id: str,
) -> None:
    caplog.set_level(logging.ERROR, logger=CLAIM_LOG)
    async with database(database_url):
        code = await site_code()
        # As an import let it in before imports refused the prefix.
        await Device.create(device_id=device_id, kind="kiosk", serial=RESERVED_SERIAL)
        service = ClaimService(settings_for(secured))
        async with serving(service) as task:
            reserved = await claim(secured, code, RESERVED_SERIAL)
            following = await claim(secured, code, NEXT_SERIAL)
            still_serving = not task.done()
        row = await Device.get(device_id=device_id)

    assert (reserved.status, reserved.reason) == (ClaimStatus.REFUSED, "unavailable")
    assert following.status is ClaimStatus.ACCEPTED
    assert still_serving
    assert service.outcomes == {"unavailable": 1, "accepted": 1}
    assert row.broker_generation == 0, "nothing recorded for the refused one"
    [record] = logged(caplog, f"could not answer the claim of serial {RESERVED_SERIAL!r}")
    assert record.exc_info is not None, "an unforeseen failure is logged with its traceback"
    assert "reserved for services" in str(record.exc_info[1])
    # The control plane's own login was not handed to the terminal: it still gets in.
    control_plane = secured.probe(dynsec.CONTROL_PLANE_USERNAME)
    assert control_plane.connect() == 0
    control_plane.close()


async def test_a_reserved_device_id_holding_a_login_gets_none_and_the_rest_are_reconciled(
    database_url: str, secured: SecuredBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="provisioning.device_actions")
    settings = settings_for(secured)
    async with database(database_url):
        # As a database from before imports and claims refused the prefix could hold them.
        for device_id in (dynsec.CONTROL_PLANE_USERNAME, "termfleet-kiosk-7", "kiosk-8"):
            await Device.create(device_id=device_id, kind="kiosk", broker_generation=1)
        desired = await device_actions.desired_state(settings)

    logins = [client.username for client in desired.clients]
    assert logins.count(dynsec.CONTROL_PLANE_USERNAME) == 1, "the service's own login, once"
    assert "termfleet-kiosk-7" not in logins
    assert "kiosk-8" in logins, "the other terminals are still reconciled"
    mine = next(c for c in desired.clients if c.username == dynsec.CONTROL_PLANE_USERNAME)
    assert mine.password == secured.password(dynsec.CONTROL_PLANE_USERNAME)
    refused = [r.getMessage() for r in caplog.records if "gets no broker login" in r.getMessage()]
    assert len(refused) == 2, refused


# --- a PostgreSQL connection terminated mid-query ---------------------------------------------


@contextlib.asynccontextmanager
async def table_locked(url: str, table: str) -> AsyncIterator[Callable[[], Awaitable[int]]]:
    """``table`` locked by another session; the function given ends whoever waits on it.

    So the control plane's query is under way when its connection goes, as when PostgreSQL
    restarts or an administrator ends the session. The lock goes with it, or when the block ends.
    """
    admin = await asyncpg.connect(url)
    transaction = admin.transaction()
    await transaction.start()
    await admin.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    async def end_waiting() -> int:
        query = (
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND pid <> pg_backend_pid()"
        )
        async with asyncio.timeout(WAIT_S):
            while not (ended := await admin.fetchval(query)):  # noqa: ASYNC110 - PostgreSQL's
                await asyncio.sleep(0.02)  # view of who waits on a lock has no event: polled
        await transaction.rollback()
        return int(ended)

    try:
        yield end_waiting
    finally:
        if admin.is_in_transaction():
            await transaction.rollback()
        await admin.close()


async def first_of(event: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Until ``event`` is set; a task that ended first raises what ended it."""
    waiting = asyncio.create_task(event.wait())
    await asyncio.wait({waiting, task}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    if task.done():
        task.result()


class _Watched(runner.Provisioning):
    """Provisioning that says when a reconcile went through."""

    def __init__(self, settings: ProvisioningSettings, metrics: ControlPlaneMetrics) -> None:
        super().__init__(settings, metrics)
        self.reconciled = asyncio.Event()

    def _record(self, report: Report) -> None:
        super()._record(report)
        self.reconciled.set()


def test_a_reconcile_whose_connection_is_terminated_mid_query_is_retried(
    postgres: PostgresServer | None,
    request: pytest.FixtureRequest,
    secured: SecuredBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL only: a SQLite file has no connection to terminate."""
    server = postgres_server(postgres)
    monkeypatch.setattr(runner, "RETRY_S", 0.0)  # the retry at once, not in 10 s
    with server.temporary_database(request.getfixturevalue("migrated_postgres")) as url:
        failed, survived = asyncio.run(_reconcile_terminated(url, secured))

    assert (failed, survived) == (1.0, True)


async def _reconcile_terminated(url: str, broker: SecuredBroker) -> tuple[float | None, bool]:
    metrics = ControlPlaneMetrics(FleetState([]))
    async with database(url):
        provisioning = _Watched(settings_for(broker), metrics)
        async with (
            table_locked(url, "device") as end_waiting,
            running_task(provisioning.keep_reconciled(3600.0)) as task,
        ):
            assert await end_waiting() == 1  # the reconcile's read of the devices
            await first_of(provisioning.reconciled, task)
            survived = provisioning.reconciled.is_set() and not task.done()
    failed = metrics.registry.get_sample_value(
        "termfleet_broker_reconciles_total", {"result": "failed"}
    )
    return failed, survived


def test_a_claim_whose_connection_is_terminated_mid_query_is_told_to_try_later(
    postgres: PostgresServer | None,
    request: pytest.FixtureRequest,
    secured: SecuredBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PostgreSQL only: a SQLite file has no connection to terminate."""
    server = postgres_server(postgres)
    caplog.set_level(logging.ERROR, logger=CLAIM_LOG)
    with server.temporary_database(request.getfixturevalue("migrated_postgres")) as url:
        terminated, following, still_serving = asyncio.run(_claim_terminated(url, secured))

    assert (terminated.status, terminated.reason) == (ClaimStatus.REFUSED, "unavailable")
    assert following.status is ClaimStatus.ACCEPTED
    assert still_serving
    # A database gone is no defect: one line naming it, as for the errors tortoise translates.
    [record] = logged(caplog, "could not enroll a terminal: ")
    assert record.exc_info is None
    assert "connection" in record.getMessage()
    assert logged(caplog, "could not answer the claim") == []


async def _claim_terminated(
    url: str, broker: SecuredBroker
) -> tuple[ClaimResponse, ClaimResponse, bool]:
    async with database(url):
        code = await site_code()
        async with serving(ClaimService(settings_for(broker))) as task:
            async with table_locked(url, "claim_token") as end_waiting:
                asking = asyncio.create_task(claim(broker, code, RESERVED_SERIAL))
                assert await end_waiting() == 1  # the enrollment's read of the token
                terminated = await asking
            following = await claim(broker, code, NEXT_SERIAL)
            still_serving = not task.done()
    return terminated, following, still_serving
