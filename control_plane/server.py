"""The control-plane process: database, MQTT ingest and HTTP server, stopped cleanly by a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from dataclasses import dataclass

from aiohttp import web

from edge.mqtt import BrokerAddress

from . import registry
from .db import database
from .fleet import FleetState
from .http.app import make_app
from .ingest import Ingest
from .metrics import ControlPlaneMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerSettings:
    database_url: str
    mqtt: BrokerAddress
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    client_id: str = ""

    def ingest_client_id(self) -> str:
        return self.client_id or f"termfleet-cp-{socket.gethostname()}-{os.getpid()}"


async def serve(settings: ServerSettings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set."""
    async with database(settings.database_url):
        fleet = FleetState(await registry.load_states())
        metrics = ControlPlaneMetrics(fleet)
        ingest = Ingest(fleet, metrics)
        runner = web.AppRunner(make_app(fleet, metrics), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        log.info(
            "control plane: http://%s:%d, %d devices loaded, broker %s",
            settings.http_host,
            settings.http_port,
            len(fleet),
            settings.mqtt,
        )
        ingest_task = asyncio.create_task(
            ingest.run(settings.mqtt, settings.ingest_client_id()), name="ingest"
        )
        try:
            await stop.wait()
        finally:
            ingest_task.cancel()
            await asyncio.gather(ingest_task, return_exceptions=True)
            await runner.cleanup()


def run(settings: ServerSettings) -> None:
    """Blocking entry point; SIGINT and SIGTERM stop the server gracefully."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(settings, stop)

    asyncio.run(main())
