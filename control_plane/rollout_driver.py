"""A replica's part in the rollouts: drive them while holding the rollout lock, else stand by.

Every replica started with rollouts on (``server run``'s default) takes part: the one holding
the database's rollout lock (``rollout_lock``) loads the rollouts and drives them; the others
try to take the lock every ``TRY_INTERVAL_S`` and meanwhile forward the rollouts API to the
holder (``http/rollout_forward``). The holder checks its lock every ``CHECK_INTERVAL_S`` and,
once it has lost it (its database connection gone: a standby may be driving already), stops
driving at once. A replica started with ``--no-rollouts`` never takes the lock, and forwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from edge.protocol import PackageReport

from .db import DATABASE_ERRORS
from .rollout_executor import RolloutExecutor
from .rollout_lock import CHECK_TIMEOUT_S, RolloutLock

log = logging.getLogger(__name__)

TRY_INTERVAL_S = 5.0
"""How often a standby tries to take the lock: how long rollouts wait after their driver dies."""
CHECK_INTERVAL_S = 5.0
"""How often the holder checks it still holds the lock."""
HANDOVER_S = CHECK_INTERVAL_S + CHECK_TIMEOUT_S + 1.0
"""How long a replica that took the lock from another waits before it drives: long enough for
a holder whose lock connection died to notice at its next check and stop."""


class RolloutDriver:
    """Drives the rollouts while holding the lock; knows who does while standing by."""

    def __init__(  # noqa: PLR0913 - the lock, what to do with it, then keyword-only settings
        self,
        lock: RolloutLock,
        start: Callable[[], Awaitable[RolloutExecutor]],
        on_change: Callable[[RolloutExecutor | None], None],
        *,
        takes_part: bool = True,
        try_interval_s: float = TRY_INTERVAL_S,
        check_interval_s: float = CHECK_INTERVAL_S,
        handover_s: float = HANDOVER_S,
    ) -> None:
        self._lock = lock
        self._start = start
        """Loads the rollouts into a new executor, once the lock is ours."""
        self._on_change = on_change
        """Told of the executor when this replica starts driving, and of None when it stops."""
        self.takes_part = takes_part
        self._try_interval_s = try_interval_s
        self._check_interval_s = check_interval_s
        self._handover_s = handover_s
        self.executor: RolloutExecutor | None = None
        """The executor while this replica drives the rollouts, else None."""
        self.holder_url: str | None = None
        """While standing by: the URL of the replica that drives them, when one does."""
        self._driving: asyncio.Task[None] | None = None

    @property
    def driving(self) -> bool:
        return self.executor is not None

    async def start(self) -> None:
        """The first try, before the server listens, so that a lone replica answers at once.

        A failure other than the database's is logged and the lock given back: the replica
        starts as a standby, and its supervised ``run`` tries again.
        """
        try:
            await self._try()
        except Exception:
            log.exception("rollouts: could not start driving them; standing by")
            await self._stop_driving()

    async def run(self) -> None:
        """Drive or stand by until cancelled; then stop driving and let the lock go."""
        try:
            while True:
                if self.executor is not None:
                    await self._hold()
                else:
                    await asyncio.sleep(self._try_interval_s)
                    await self._try()
        finally:
            await self._stop_driving()

    async def _try(self) -> None:
        try:
            if self.takes_part and await self._lock.take():
                await self._drive(after=self.holder_url)
            else:
                self.holder_url = await self._lock.holder()
        except DATABASE_ERRORS as exc:
            log.warning("rollouts: cannot use the rollout lock now: %s", exc)
            await self._stop_driving()

    async def _drive(self, *, after: str | None) -> None:
        if after is not None:
            # Taken from another holder: one whose database connection died learns it at its
            # next check, up to a check and its timeout later. It stops driving then; until
            # it has, this one must not start, or both would write the same rollouts.
            await asyncio.sleep(self._handover_s)
            if not await self._lock.held():
                return
        executor = await self._start()
        self.executor, self.holder_url = executor, None
        self._driving = asyncio.create_task(executor.run(), name="rollout-executor")
        self._on_change(executor)
        log.info("rollouts: this replica holds the rollout lock and drives the rollouts")

    async def _hold(self) -> None:
        """Check the lock until it is lost; an executor that failed raises (its chore restarts)."""
        while True:
            await asyncio.sleep(self._check_interval_s)
            if self._driving is not None and self._driving.done():
                self._driving.result()  # raises its failure: logged, counted, started again
            if not await self._lock.held():
                log.error(
                    "rollouts: lost the rollout lock (its database connection is gone); "
                    "stopped driving, another replica may take over"
                )
                await self._stop_driving()
                return

    async def _stop_driving(self) -> None:
        # The API and the package reports first, at once; then the tick under way ends.
        if self.executor is not None:
            self.executor = None
            self._on_change(None)
        driving, self._driving = self._driving, None
        if driving is not None:
            driving.cancel()
            await asyncio.wait({driving})  # its failure, if any, was raised by ``_hold``
        with contextlib.suppress(*DATABASE_ERRORS):
            await self._lock.release()


REPLAY_S = 120.0
"""Package reports a standby keeps for the executor it may start: longer than a hand-over."""


class RecentReports:
    """The package reports a replica received while it did not drive, the latest per device.

    A device publishes its report again only when something changes, so one that arrived
    while no replica drove (the old holder gone, the new one not started) would be lost, and
    its device would wait in its step until the rollout's timeout failed it. The replica that
    starts driving replays those of the last ``keep_s``: the old holder had the earlier ones.
    """

    def __init__(
        self, keep_s: float = REPLAY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keep_s = keep_s
        self._clock = clock
        self._reports: dict[str, tuple[float, PackageReport]] = {}

    def add(self, device_id: str, report: PackageReport) -> None:
        now = self._clock()
        self._reports.pop(device_id, None)  # re-inserted last: the dict stays in arrival order
        self._reports[device_id] = (now, report)
        while self._reports:
            oldest, (at, _) = next(iter(self._reports.items()))
            if now - at <= self._keep_s:
                break
            del self._reports[oldest]

    def take(self) -> list[tuple[str, PackageReport]]:
        """Those of the last ``keep_s``, oldest first; none are kept after."""
        since = self._clock() - self._keep_s
        taken = [(device, report) for device, (at, report) in self._reports.items() if at >= since]
        self._reports.clear()
        return taken
