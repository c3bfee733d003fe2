"""The control-plane process: database, MQTT ingest and HTTP server, stopped cleanly by a signal."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web

from edge import mqtt
from edge.mqtt import BrokerAddress
from edge.protocol import PackageReport

from . import registry, rollups
from .chores import supervised
from .content_repo import ContentRepo
from .content_urls import url_key
from .db import DATABASE_ERRORS, database
from .db.whole import whole
from .fleet import DEFAULT_HEARTBEAT_TIMEOUT_S, FleetState
from .http import cases as cases_http
from .http import content as content_http
from .http import rollout_forward
from .http import twin as twin_http
from .http.app import make_app
from .http.devices_changes import ON_RETIRED
from .http.provisioning import CLAIM_LINK, claim_links
from .ingest import SESSION_EXPIRY_S, Ingest
from .metrics import ControlPlaneMetrics
from .review_chores import ReviewChores
from .reviews.score_rule import DEFAULT_RULE, ScoreRule
from .reviews.working_days import WorkingCalendar
from .rollout_driver import RecentReports, RolloutDriver
from .rollout_executor import RolloutExecutor
from .rollout_lock import RolloutLockError, rollout_lock
from .rollout_notices import DownloadSettings, NoticeMaker
from .rollup_settings import RollupSettings, SettingsError
from .site_cache import SiteCache
from .twin_publish import TwinSync, install_metrics
from .usage_metrics import DepartmentLabels

if TYPE_CHECKING:
    from provisioning.runner import Provisioning
    from provisioning.settings import ProvisioningSettings

    from .content_repo import ContentSettings

log = logging.getLogger(__name__)

EVERY_ADDRESS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - names them, binds nothing
"""``http_host`` values that listen on every address, which no peer can connect to."""
PLACEMENT_REFRESH_S = 60.0
"""How often sites (opening hours, place in the tree) and devices' placements are re-read."""
ROLLUP_FIRST_S = 30.0
"""The first roll-up (then every ``rollups.ROLLUP_INTERVAL_S``) waits until start-up is over."""


class ServerError(RuntimeError):
    """The control plane cannot start or had to stop."""


@dataclass(frozen=True)
class ServerSettings:
    database_url: str
    mqtt: BrokerAddress
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    client_id: str = ""
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    provisioning: ProvisioningSettings | None = None
    """Claim service and broker reconcile, when the control plane holds the secret."""
    content: ContentSettings | None = None
    """The content repository; its downloads need the provisioning secret too."""
    rollouts: bool = True
    """Whether this replica drives the rollouts; exactly one per database may."""
    ingest_session_expiry_s: int = SESSION_EXPIRY_S
    """How long the broker keeps the ingest's session after it is gone: 0 with several replicas."""
    public_url: str = ""
    """The URL terminals reach this control plane's HTTP server at (download URLs start so);
    by default ``http://{http_host}:{http_port}``."""
    peer_url: str = ""
    """The URL the other replicas reach this one's HTTP server at, to forward the rollouts API
    to it while it drives them; by default ``http://{http_host}:{http_port}``, with the host's
    name when ``http_host`` is every address."""
    calendar: WorkingCalendar | None = None
    """Working days for bad reviews' due dates; None: the shipped official years alone."""
    score_rule: ScoreRule = DEFAULT_RULE
    """How 好差评 ratings become 10-point scores and who is ranked (docs/scores.md)."""

    def ingest_address(self) -> BrokerAddress:
        """The URL's login if it names one, else the control plane's own from the secret."""
        if self.provisioning is None or self.mqtt.username is not None:
            return self.mqtt
        from provisioning.dynsec import CONTROL_PLANE_USERNAME  # noqa: PLC0415 - optional part

        return self.provisioning.login(CONTROL_PLANE_USERNAME)

    def peer(self) -> str:
        if self.peer_url:
            return self.peer_url
        host = self.http_host if self.http_host not in EVERY_ADDRESS else socket.gethostname()
        return f"http://{host}:{self.http_port}"

    def ingest_client_id(self) -> str:
        # Stable across restarts, so that a restarted control plane resumes its broker session
        # and receives what was queued and unacknowledged meanwhile. A second replica on the
        # same host needs its own --client-id.
        return self.client_id or f"termfleet-cp-{socket.gethostname()}"


async def serve(
    settings: ServerSettings, stop: asyncio.Event, *, freeze_after_start: bool = False
) -> None:
    """Run until ``stop`` is set.

    ``freeze_after_start``: what startup made is left out of later garbage collections
    (``_freeze_what_startup_made``); the process's entry point asks for it, tests that run
    a control plane inside their own process do not.
    """
    try:
        rollup_settings = RollupSettings.from_env()
    except SettingsError as exc:
        raise ServerError(str(exc)) from exc
    async with database(settings.database_url):
        fleet = FleetState(
            await registry.load_states(),
            heartbeat_timeout_s=settings.heartbeat_timeout_s,
            started_at=datetime.now(UTC),
        )
        sites = SiteCache(fleet)
        await refresh_placements(fleet, sites)
        metrics = ControlPlaneMetrics(fleet)
        ingest = Ingest(fleet, metrics, calendar=settings.calendar)
        await ingest.usage.departments.reload()
        app = make_app(fleet, metrics, ingest, sites_cache=sites, score_rule=settings.score_rule)
        review_chores = ReviewChores(ingest, metrics, lambda: datetime.now(UTC))
        app[cases_http.NOTICES] = review_chores.case_notices
        twin_sync = _start_twin(app, ingest, metrics)
        rollout_driver = await _start_rollouts(app, settings, fleet, ingest, metrics)
        provisioning = None
        if settings.provisioning is not None:
            from provisioning.runner import Provisioning  # noqa: PLC0415 - optional part

            provisioning = Provisioning(settings.provisioning, metrics)
            app[ON_RETIRED] = provisioning.device_retired
            app[CLAIM_LINK] = claim_links(settings.provisioning)
        _serve_content(app, settings, metrics)
        runner = await _listen(app, settings)
        log.info(
            "control plane: http://%s:%d, %d devices loaded, broker %s",
            settings.http_host,
            settings.http_port,
            len(fleet),
            settings.mqtt,
        )
        if freeze_after_start:
            _freeze_what_startup_made()
        try:
            async with asyncio.TaskGroup() as tasks:
                ingest_task = tasks.create_task(
                    ingest.run(
                        settings.ingest_address(),
                        settings.ingest_client_id(),
                        session_expiry_s=settings.ingest_session_expiry_s,
                    ),
                    name="ingest",
                )
                chores = [
                    tasks.create_task(
                        supervised(name, chore, metrics.chore_failures), name=name
                    )
                    for name, chore in _chores(
                        fleet=fleet, sites=sites, ingest=ingest, twin_sync=twin_sync,
                        review_chores=review_chores, rollout_driver=rollout_driver,
                        rollup_settings=rollup_settings, provisioning=provisioning,
                    )
                ]  # fmt: skip
                await stop.wait()
                ingest_task.cancel()
                for chore in chores:
                    chore.cancel()
        except* Exception as failed:  # noqa: BLE001 - any failure of the ingest ends the server
            # The ingest reconnects on its own, and the chores are started again when they fail
            # (``chores``); anything else that ends the ingest ends the server, loudly, rather
            # than leaving an HTTP server up that takes in nothing.
            cause = failed.exceptions[0]
            msg = f"the ingest stopped: {type(cause).__name__}: {cause}"
            raise ServerError(msg) from cause
        finally:
            await runner.cleanup()


def _chores(  # noqa: PLR0913 - each part that has a chore
    *,
    fleet: FleetState,
    sites: SiteCache,
    ingest: Ingest,
    twin_sync: TwinSync,
    review_chores: ReviewChores,
    rollout_driver: RolloutDriver,
    rollup_settings: RollupSettings,
    provisioning: Provisioning | None,
) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
    """The server's chores by name, each supervised (``chores``): none can stop the server."""
    found: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("placements", lambda: _keep_placements(fleet, sites, ingest.usage.departments)),
        ("twin", twin_sync.run),
        ("reviews", review_chores.run),
        ("rollouts", rollout_driver.run),
        ("rollups", lambda: rollups.keep_rolled_up(rollup_settings, first_after_s=ROLLUP_FIRST_S)),
    ]
    if provisioning is not None:
        found.append(("provisioning", provisioning.run))
    return found


async def _listen(app: web.Application, settings: ServerSettings) -> web.AppRunner:
    """The HTTP server, listening; a port taken is a ServerError that says so."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
    except OSError as exc:
        await runner.cleanup()
        where = f"{settings.http_host}:{settings.http_port}"
        msg = f"cannot listen on {where}: {exc.strerror or exc}"
        raise ServerError(msg) from exc
    return runner


def _freeze_what_startup_made() -> None:
    """Leave the objects of startup out of every later garbage collection.

    Modules, the ORM's metadata, the loaded fleet: hundreds of thousands of objects that live as
    long as the process. A full collection walked them all, stopping the event loop for 74 ms
    with 200 devices while the ingest took 10,000 records/s, and every record in flight waited
    (bench/ingest.py). Frozen, a full collection takes under a millisecond there. Reference
    counting still frees them as before; only cycles among them would stay.
    """
    gc.collect()
    gc.freeze()


def _start_twin(app: web.Application, ingest: Ingest, metrics: ControlPlaneMetrics) -> TwinSync:
    """The device twin's sync, told of reported config, in the API and the metrics."""
    twin_sync = TwinSync(ingest)
    ingest.on_config_reported = twin_sync.reported
    app[twin_http.SYNC] = twin_sync
    install_metrics(twin_sync, metrics.registry)
    return twin_sync


def _serve_content(
    app: web.Application, settings: ServerSettings, metrics: ControlPlaneMetrics
) -> None:
    """Uploads into the content directory; downloads too when the server holds the secret."""
    content = settings.content
    if content is None:
        return
    secret = settings.provisioning.secret if settings.provisioning is not None else None
    content_http.install(
        app,
        ContentRepo(content),
        url_key=url_key(secret) if secret is not None else None,
        registry=metrics.registry,
    )


async def _start_rollouts(
    app: web.Application,
    settings: ServerSettings,
    fleet: FleetState,
    ingest: Ingest,
    metrics: ControlPlaneMetrics,
) -> RolloutDriver:
    """The replica's rollout driver, its first try at the rollout lock made (``rollout_driver``).

    While it holds the lock it drives the rollouts, publishing on the ingest's connection and
    taking the devices' package reports; otherwise its rollouts API goes to the holder.
    """
    downloads = None
    if settings.provisioning is not None:
        base_url = settings.public_url or f"http://{settings.http_host}:{settings.http_port}"
        downloads = DownloadSettings(base_url, url_key(settings.provisioning.secret))

    def publish(message: mqtt.Outgoing) -> bool:
        connection = ingest.downlink
        if connection is None:
            return False
        connection.publish_nowait(message)
        return True

    recent = RecentReports()

    async def loaded() -> RolloutExecutor:
        executor = RolloutExecutor(
            NoticeMaker(downloads, fleet.hours_of),
            fleet.hours_of,
            publish,
            connection=lambda: ingest.downlink,
        )
        await executor.load()
        for device_id, report in recent.take():  # what arrived while no replica drove
            await executor.report(device_id, report)
        return executor

    async def reported(device_id: str, report: PackageReport) -> None:
        if driver.executor is not None:
            await driver.executor.report(device_id, report)
        else:
            recent.add(device_id, report)

    def driving(executor: RolloutExecutor | None) -> None:
        metrics.rollouts_driving.set(0 if executor is None else 1)

    ingest.on_packages_reported = reported
    try:
        # Only a replica that may hold the lock needs a URL the lock can name.
        lock = rollout_lock(settings.database_url, settings.peer() if settings.rollouts else "")
    except RolloutLockError as exc:
        raise ServerError(str(exc)) from exc
    driver = RolloutDriver(lock, loaded, driving, takes_part=settings.rollouts)
    rollout_forward.install(app, driver)
    await driver.start()
    return driver


async def refresh_placements(fleet: FleetState, sites: SiteCache) -> None:
    """Give the fleet what it keeps of the database: sites' hours and paths, placements."""
    # Through the cache the API's site changes use, so that this cannot set what it read
    # before such a change after it.
    await sites.reload()
    fleet.place(await registry.load_placements())


async def _keep_placements(
    fleet: FleetState, sites: SiteCache, departments: DepartmentLabels
) -> None:
    """Re-read sites and placements now and then: an import or a move may come from elsewhere.

    The departments the usage metrics name one by one too (an import may add some).
    """
    while True:
        await asyncio.sleep(PLACEMENT_REFRESH_S)
        try:
            await whole(refresh_placements(fleet, sites))
            await whole(departments.reload())
        except DATABASE_ERRORS as exc:
            log.warning("could not re-read sites and placements: %s", exc)


def run(settings: ServerSettings) -> None:
    """Blocking entry point; SIGINT and SIGTERM stop the server gracefully."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, stop, freeze_after_start=True)

    asyncio.run(main())
