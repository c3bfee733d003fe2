"""The control plane's 好差评 chores, run together as one of the server's background tasks.

The pads' hash chains are checked as reviews arrive (``review_chain_watch``). Each chore
retries on database errors by itself; a cancellation (the server stopping) ends them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from .metrics import ControlPlaneMetrics
from .review_chain_watch import ChainWatch


class ReviewChores:
    def __init__(self, metrics: ControlPlaneMetrics, clock: Callable[[], datetime]) -> None:
        self.chain_watch = ChainWatch(metrics, clock)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as chores:
            chores.create_task(self.chain_watch.run(), name="review-chains")
