"""/healthz: the process answers (liveness). /readyz: it can do its work (readiness).

A load balancer or a compose healthcheck sends traffic to a replica only while /readyz answers
200: its database answers a trivial query, its schema is the one this termfleet migrates to
(``termfleet db status``'s reckoning), and its ingest is connected to the broker. Otherwise it
answers 503 with each check's verdict. Both are open, like /metrics: probes carry no token, so
the answers name what failed but not the database's own error, which goes to the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from tortoise.backends.base.client import BaseDBAsyncClient

from control_plane.db import migrator, opened_client
from control_plane.ingest import Ingest

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 2.0
"""The database's checks together: well inside a probe's own timeout (compose gives it 5 s)."""
OK = "ok"
NOT_CHECKED = "not checked: the database does not answer"


@dataclass(frozen=True)
class Readiness:
    """Each check's verdict (``ok``, or why not) and, for the log only, the errors behind them."""

    checks: Mapping[str, str]
    errors: Mapping[str, str]

    @property
    def ready(self) -> bool:
        return all(verdict == OK for verdict in self.checks.values())

    def body(self) -> dict[str, object]:
        return {"status": "ready" if self.ready else "not_ready", "checks": dict(self.checks)}


def migrations_verdict(status: migrator.MigrationStatus) -> str:
    """``ok`` when the database is at this termfleet's latest migration; otherwise why not."""
    if status.unknown:
        return f"ahead of this termfleet: {', '.join(status.unknown)}"
    if status.pending:
        return f"{len(status.pending)} pending: {', '.join(status.pending)}"
    return OK


async def _answers(client: BaseDBAsyncClient) -> str:
    await client.execute_query("SELECT 1")
    return OK


async def _migrations(client: BaseDBAsyncClient) -> str:
    # The status `termfleet db status` shows. It re-reads the migrations package each time,
    # about 3 ms: cheap beside a probe every few seconds, and it cannot go stale.
    return migrations_verdict(await migrator.status(client))


class Probes:
    """The two handlers, over the ingest whose connection they report."""

    def __init__(self, ingest: Ingest) -> None:
        self._ingest = ingest
        self._last: Mapping[str, str] | None = None

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "mqtt_connected": self._ingest.connected})

    async def readyz(self, _request: web.Request) -> web.Response:
        readiness = await self.check()
        if readiness.checks != self._last:
            # Probes come every few seconds: the log tells each change, not each probe.
            self._last = readiness.checks
            _log_change(readiness)
        return web.json_response(readiness.body(), status=200 if readiness.ready else 503)

    async def check(self) -> Readiness:
        errors: dict[str, str] = {}
        deadline = asyncio.get_running_loop().time() + READY_TIMEOUT_S
        database = await self._within(deadline, _answers, "database", errors)
        migrations = NOT_CHECKED
        if database == OK:
            migrations = await self._within(deadline, _migrations, "migrations", errors)
        mqtt = OK if self._ingest.connected else "disconnected"
        return Readiness({"database": database, "migrations": migrations, "mqtt": mqtt}, errors)

    async def _within(
        self,
        deadline: float,
        check: Callable[[BaseDBAsyncClient], Awaitable[str]],
        name: str,
        errors: dict[str, str],
    ) -> str:
        try:
            async with asyncio.timeout_at(deadline):
                return await check(opened_client())
        except TimeoutError:
            return f"no answer within {READY_TIMEOUT_S:g} s"
        except Exception as exc:  # noqa: BLE001 - any failure is a verdict of the probe, not a 500
            errors[name] = f"{type(exc).__name__}: {exc}"
            return f"failed: {type(exc).__name__}"


def _log_change(readiness: Readiness) -> None:
    if readiness.ready:
        log.info("ready: database, migrations and broker connection are ok")
        return
    failed = [
        f"{name}: {readiness.errors.get(name, verdict)}"
        for name, verdict in readiness.checks.items()
        if verdict != OK
    ]
    log.warning("not ready: %s", "; ".join(failed))


def probe_routes(ingest: Ingest) -> list[web.RouteDef]:
    """/healthz and /readyz, both open."""
    probes = Probes(ingest)
    return [web.get("/healthz", probes.healthz), web.get("/readyz", probes.readyz)]
