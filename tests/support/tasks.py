"""Work run as an asyncio task for the length of a block, for tests of long-running loops."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine


@contextlib.asynccontextmanager
async def running_task(work: Coroutine[None, None, None]) -> AsyncIterator[asyncio.Task[None]]:
    """``work`` as a task until the block ends, then cancelled; one that failed raises here."""
    task = asyncio.create_task(work)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
