"""The ingest with the database off: what storing the records costs, by difference.

``python -m bench.ingest_nodb --mqtt-url URL --ready-port N`` runs the control plane's own
``Ingest`` (MQTT connection, decoding and validation, fleet state, batching, the acknowledgement
after each "commit", the usage counters) with one change: each batch goes to ``store_nothing``,
which commits nothing and answers as a commit that stored every record would. Nothing else of
the server runs (no HTTP, no chores), and nothing is written anywhere: it is a benchmark's
stand-in, not a mode of the product. ``bench/ingest.py`` measures it like the full ingest, in its
own process, so the gap between the two lines is what the database costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tortoise.backends.base.client import BaseDBAsyncClient

from control_plane.fleet import FleetState
from control_plane.ingest import Ingest
from control_plane.metrics import ControlPlaneMetrics
from control_plane.records import Committed, RecordRow, RejectedRow
from control_plane.review_ingest import ReviewOutcome
from control_plane.services.broker import BrokerSettings, start_broker
from control_plane.services.processes import ManagedProcess, free_port
from edge.mqtt import BrokerAddress

READY_POLL_S = 0.05
CLIENT_ID = "bench-cp-nodb"


async def store_nothing(
    records: Sequence[RecordRow],
    _rejected: Sequence[RejectedRow],
    _then: Callable[[BaseDBAsyncClient], Awaitable[ReviewOutcome | None]],
) -> Committed[ReviewOutcome | None]:
    """A commit that stores nothing and reports every record as newly stored.

    The reviews' ``then`` needs a transaction and is not run: the benchmark sends usage records.
    """
    await asyncio.sleep(0)  # a commit yields to the loop at least once; so does this one
    return Committed(records)


async def serve(mqtt_url: str, ready_port: int) -> None:
    """Consume the uplink until SIGTERM; listen on ``ready_port`` once subscribed."""
    fleet = FleetState()
    ingest = Ingest(fleet, ControlPlaneMetrics(fleet), store=store_nothing)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    consuming = asyncio.create_task(ingest.run(BrokerAddress.from_url(mqtt_url), CLIENT_ID))
    # Ingest has a flag, not an event, for "subscribed": polled until then.
    while not ingest.connected and not consuming.done():  # noqa: ASYNC110
        await asyncio.sleep(READY_POLL_S)
    # The port says "subscribed" to the parent (ManagedProcess.wait_port); no one talks on it.
    ready = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", ready_port)
    try:
        await asyncio.wait(
            [consuming, asyncio.create_task(stop.wait())], return_when="FIRST_COMPLETED"
        )
    finally:
        ready.close()
        consuming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consuming


@dataclass(frozen=True)
class NoDatabaseStand:
    broker: BrokerSettings
    server: ManagedProcess


@contextlib.contextmanager
def nodb_stand(workdir: Path) -> Iterator[NoDatabaseStand]:
    """A broker and this module's ingest process, both stopped on the way out."""
    broker = BrokerSettings(workdir / "nodb-broker", free_port())
    broker_process = start_broker(broker)
    try:
        port = free_port()
        argv = [sys.executable, "-m", "bench.ingest_nodb", "--mqtt-url", broker.url,
                "--ready-port", str(port)]  # fmt: skip
        server = ManagedProcess("ingest-nodb", argv, workdir / "nodb.log")
        server.start_and_wait_port("127.0.0.1", port)
        try:
            yield NoDatabaseStand(broker, server)
        finally:
            server.stop()
    finally:
        broker_process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mqtt-url", required=True)
    parser.add_argument("--ready-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.mqtt_url, args.ready_port))


if __name__ == "__main__":
    main()
