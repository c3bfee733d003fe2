"""Database work that a cancellation must not cut in half.

tortoise leaks the pooled connection of a transaction cancelled while it begins:
``TransactionContextPooled.__aenter__`` has taken the connection from the pool when ``BEGIN``
is interrupted, and its ``__aexit__``, which gives it back, never runs. At shutdown the pool's
close then waits for that connection until its 10 s timeout and fails the server's exit. The
server's background chores (twin, rollouts, roll-ups, placements) and the ingest are cancelled
when it stops, so each runs its database work through ``whole``: a cancellation waits for the
work under way and lands after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_finishing: set[asyncio.Task[Any]] = set()
"""Work whose caller was cancelled twice: held here so that it runs to its end."""


async def whole(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work``; if the caller is cancelled meanwhile, finish it first, then re-raise."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        _finishing.add(task)
        task.add_done_callback(_finishing.discard)
        # asyncio.wait never cancels what it waits for: a second cancellation of the caller
        # leaves the work to finish on its own.
        await asyncio.wait([task])
        raise
