"""The rollout driver against a stand-in lock: when it drives, when it stops, what it survives.

The real locks and real replicas are in tests/test_rollout_leader.py; here the lock does what a
test says, with intervals of milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator

import pytest

from control_plane.rollout_driver import RecentReports, RolloutDriver
from control_plane.rollout_executor import RolloutExecutor
from edge.protocol import PackageReport
from tests.support.tasks import running_task

FAST_S = 0.01


class Lock:
    """Free unless ``taken_by`` names another; ``lost`` makes ``held`` answer False."""

    def __init__(self) -> None:
        self.taken_by: str | None = None
        self.ours = False
        self.lost = False
        self.failing: Exception | None = None
        self.released = 0

    async def take(self) -> bool:
        if self.failing is not None:
            raise self.failing
        if self.taken_by is not None:
            return False
        self.ours, self.lost = True, False
        return True

    async def held(self) -> bool:
        return self.ours and not self.lost

    async def holder(self) -> str | None:
        return self.taken_by

    async def release(self) -> None:
        self.ours = False
        self.released += 1


class Executor:
    """Runs until cancelled, as the real one does."""

    def __init__(self) -> None:
        self.cancelled = False

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self.cancelled = True


@contextlib.asynccontextmanager
async def running(driver: RolloutDriver) -> AsyncIterator[asyncio.Task[None]]:
    await driver.start()
    async with running_task(driver.run()) as task:
        yield task


async def until(check: object, timeout_s: float = 2.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # type: ignore[operator]  # noqa: ASYNC110 - polled state, no event
            await asyncio.sleep(FAST_S)


def driver_of(lock: Lock, changes: list[object], *, takes_part: bool = True) -> RolloutDriver:
    async def start() -> RolloutExecutor:
        return Executor()  # type: ignore[return-value]

    return RolloutDriver(
        lock,
        start,
        changes.append,
        takes_part=takes_part,
        try_interval_s=FAST_S,
        check_interval_s=FAST_S,
        handover_s=FAST_S,
    )


async def test_drives_while_it_holds_the_lock_and_stops_at_once_when_it_is_lost() -> None:
    lock, changes = Lock(), list[object]()
    driver = driver_of(lock, changes)
    async with running(driver):
        assert driver.driving
        executor = driver.executor
        lock.lost, lock.taken_by = True, "http://other:8080"  # its connection died; another took it
        await until(lambda: not driver.driving)
        assert executor.cancelled  # type: ignore[union-attr]
        assert changes == [executor, None]
        await until(lambda: driver.holder_url == "http://other:8080")
        lock.taken_by = None  # the other one is gone in turn
        await until(lambda: driver.driving)
    assert lock.released >= 2  # after losing it, and when stopped
    assert changes[-1] is None


async def test_a_standby_names_the_holder_and_never_drives_with_no_rollouts() -> None:
    lock, changes = Lock(), list[object]()
    lock.taken_by = "http://driver:8080"
    driver = driver_of(lock, changes, takes_part=False)
    async with running(driver):
        assert driver.holder_url == "http://driver:8080"
        lock.taken_by = None  # free, but this replica does not take part
        await until(lambda: driver.holder_url is None)
        await asyncio.sleep(5 * FAST_S)
        assert not driver.driving
    assert changes == []


async def test_a_database_that_refuses_the_lock_leaves_it_standing_by_until_it_answers() -> None:
    lock, changes = Lock(), list[object]()
    lock.failing = OSError("connection refused")
    driver = driver_of(lock, changes)
    async with running(driver):
        assert not driver.driving
        await asyncio.sleep(5 * FAST_S)  # tries again and again, and lives
        lock.failing = None
        await until(lambda: driver.driving)


async def test_rollouts_that_cannot_be_loaded_give_the_lock_back() -> None:
    lock, changes = Lock(), list[object]()

    async def start() -> RolloutExecutor:
        raise sqlite3.OperationalError("database is locked")

    driver = RolloutDriver(lock, start, changes.append, try_interval_s=FAST_S)
    await driver.start()
    assert not driver.driving
    assert not lock.ours
    assert changes == []


async def test_an_executor_that_fails_ends_the_driver_loudly() -> None:
    lock, changes = Lock(), list[object]()

    class Failing:
        async def run(self) -> None:
            raise RuntimeError("a defect")

    async def start() -> RolloutExecutor:
        return Failing()  # type: ignore[return-value]

    driver = RolloutDriver(lock, start, changes.append, check_interval_s=FAST_S)
    await driver.start()
    with pytest.raises(RuntimeError, match="a defect"):
        await asyncio.wait_for(driver.run(), 2)
    assert not lock.ours  # given back on the way out


async def test_taking_the_lock_from_another_holder_waits_before_driving() -> None:
    """Long enough for an old holder whose lock connection died to notice and stop."""
    lock, changes = Lock(), list[object]()
    lock.taken_by = "http://old:8080"
    driver = RolloutDriver(
        lock, driver_of(lock, changes)._start, changes.append,  # noqa: SLF001 - its start
        try_interval_s=FAST_S, check_interval_s=FAST_S, handover_s=0.3,
    )  # fmt: skip
    async with running(driver):
        lock.taken_by = None
        await until(lambda: lock.ours)
        started = asyncio.get_running_loop().time()
        await until(lambda: driver.driving)
        assert asyncio.get_running_loop().time() - started >= 0.25
        assert changes[-1] is driver.executor


def test_recent_reports_keep_the_latest_per_device_of_the_last_minutes() -> None:
    now = [0.0]
    recent = RecentReports(keep_s=60.0, clock=lambda: now[0])
    first, second, third = (PackageReport(packages=[]) for _ in range(3))
    recent.add("kiosk-1", first)
    now[0] = 30.0
    recent.add("kiosk-2", second)
    now[0] = 70.0  # kiosk-1's report is older than a minute now
    recent.add("kiosk-2", third)
    ((device, report),) = recent.take()
    assert (device, report is third) == ("kiosk-2", True)  # the latest, not the earlier one
    assert recent.take() == []
