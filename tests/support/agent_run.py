"""One agent running in the test's event loop, connected before the test goes on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from edge.agent.runner import Agent

WAIT_S = 20.0


@contextlib.asynccontextmanager
async def connected_agent(
    agent: Agent, *, close: bool = False, wait_s: float = WAIT_S
) -> AsyncIterator[None]:
    """Run ``agent`` until the block ends; enter once it is connected. ``close``: then close it."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop), name="agent")
    try:
        await asyncio.wait_for(agent.connected.wait(), wait_s)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, wait_s)
        if close:
            agent.close()
