"""The server's chores, each restarted when it fails, so that one never stops the server.

A chore (roll-ups, the twin sync, the review chores, the rollouts, placements, provisioning) is
a loop over stored data that catches the database's errors itself. Anything else it raises is a
defect or data nothing foresaw, and the same data makes it raise again after a restart: ending
the server for it stopped the ingest and the API too, on every replica, at every start, with
every record waiting in the terminals' outboxes. Supervised, the chore is logged with its
traceback, counted (``termfleet_chore_failures_total{chore}``, alert ``ControlPlaneChoreFailing``)
and started again after a pause that doubles up to five minutes, while the rest runs on.
The ingest itself is not a chore: a server that cannot take records in stops, loudly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Counter

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Pauses:
    """How long a failed chore waits before it starts again."""

    first_s: float = 1.0
    max_s: float = 300.0
    """Each failure doubles the pause, up to this."""
    steady_s: float = 600.0
    """A chore that ran this long before failing waits ``first_s`` again, not a longer pause."""


async def supervised(
    name: str,
    chore: Callable[[], Awaitable[object]],
    failures: Counter,
    *,
    pauses: Pauses = Pauses(),
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``chore()`` until it returns; each time it raises, count, log and start it again."""
    pause = pauses.first_s
    while True:
        started = clock()
        try:
            await chore()
        except Exception:
            failures.labels(name).inc()
            if clock() - started >= pauses.steady_s:
                pause = pauses.first_s
            log.exception("the %s chore failed; starting it again in %.0f s", name, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, pauses.max_s)
        else:
            return
