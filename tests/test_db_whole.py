"""A cancellation waits for the database work under way (control_plane.db.whole).

The server cancels its chores and its ingest when it stops; a transaction cut while it begins
would leak its pooled connection and make the pool's close at exit time out.
"""

from __future__ import annotations

import asyncio

import pytest
from tortoise.transactions import in_transaction

from control_plane.db import database
from control_plane.db.models import Department
from control_plane.db.whole import whole


async def _write_when(allowed: asyncio.Event, started: asyncio.Event, code: str) -> str:
    async with in_transaction():
        started.set()
        await allowed.wait()
        await Department.create(code=code, name=code)
    return code


async def test_a_cancelled_caller_waits_for_the_transaction_to_commit(database_url: str) -> None:
    allowed, started = asyncio.Event(), asyncio.Event()
    async with database(database_url):
        caller = asyncio.create_task(whole(_write_when(allowed, started, "c1")))
        await started.wait()
        caller.cancel()
        await asyncio.sleep(0.05)
        assert not caller.done()  # still waiting for the work, which waits for us
        allowed.set()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert await Department.filter(code="c1").count() == 1
    # Leaving ``database`` closed the pool: no connection was left behind to time it out.


async def test_work_cancelled_twice_still_runs_to_its_end(database_url: str) -> None:
    allowed, started = asyncio.Event(), asyncio.Event()
    async with database(database_url):
        caller = asyncio.create_task(whole(_write_when(allowed, started, "c2")))
        await started.wait()
        caller.cancel()
        await asyncio.sleep(0)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        allowed.set()
        for _ in range(100):
            if await Department.filter(code="c2").count():
                break
            await asyncio.sleep(0.02)
        assert await Department.filter(code="c2").count() == 1


async def test_what_the_work_returns_or_raises_reaches_the_caller() -> None:
    async def fails() -> None:
        raise ValueError("no")

    async def answers() -> int:
        return 42

    assert await whole(answers()) == 42
    with pytest.raises(ValueError, match="no"):
        await whole(fails())
