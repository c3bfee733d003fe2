"""asyncio helpers that the standard library lacks on the Python versions we support."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

RECANCEL_S = 0.1


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel the tasks and wait until every one has ended, cancelling again if needed.

    On Python 3.11 ``asyncio.wait_for`` swallows a cancellation that arrives just as the awaited
    operation completes (fixed in 3.12), and aiomqtt awaits it on every publish: a task
    cancelled at that moment carries on, e.g. into a heartbeat interval's sleep, and whoever
    waits for it waits that long. Cancelling again until it ends makes a stop prompt.
    """
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
